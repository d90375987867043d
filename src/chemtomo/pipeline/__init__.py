"""Pipelines: whole tilt series to quantified volumes."""

from .volume import VolumeResult, reconstruct_series, series_to_channel_data, slice_chunks

__all__ = ["VolumeResult", "reconstruct_series", "series_to_channel_data", "slice_chunks"]
