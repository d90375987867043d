"""Preprocessing: spectrum images to line maps, filtering, registration, alignment."""

from .align import (
    Alignment, align_tilt_series, apply_alignment, compare_shifts, estimate_shifts, estimate_tilt_axis_offset,
    estimate_tilt_axis_rotation, tomviz_shifts,
)
from .filters import FILTER_SIGMA_PX, gaussian_filter_stack
from .linemaps import clip_negative, line_energy_kev, line_intensities, rebin, synthesize_spectrum_image
from .register import centre_of_mass, estimate_shift, normalise_shadowing, register_haadf_to_eds, shift_stack

__all__ = [
    "FILTER_SIGMA_PX",
    "Alignment", "align_tilt_series", "apply_alignment", "centre_of_mass", "clip_negative", "compare_shifts",
    "estimate_shift", "estimate_shifts", "estimate_tilt_axis_offset", "estimate_tilt_axis_rotation",
    "gaussian_filter_stack", "line_energy_kev", "line_intensities", "normalise_shadowing", "rebin",
    "register_haadf_to_eds", "shift_stack", "synthesize_spectrum_image", "tomviz_shifts",
]
