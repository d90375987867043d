"""Pipelines: whole tilt series to quantified volumes, and HAADF-only volumes."""

from .chunks import series_to_channel_data, slice_chunks
from .haadf import reconstruct_haadf
from .volume import VolumeResult, reconstruct_series

__all__ = ["VolumeResult", "reconstruct_haadf", "reconstruct_series", "series_to_channel_data", "slice_chunks"]
