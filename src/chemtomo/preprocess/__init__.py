"""Preprocessing: spectrum images to line maps, filtering, registration, alignment."""

from .filters import gaussian_filter_stack

__all__ = ["gaussian_filter_stack"]
