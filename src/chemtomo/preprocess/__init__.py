"""Preprocessing: spectrum images to line maps, filtering, registration, alignment.

The raw-series stages: :func:`load_line_maps` (:mod:`.raw`, options
:class:`LineMapOptions`) and :func:`preprocess_tilt_series` (:mod:`.series`,
options :class:`PreprocessOptions`).
"""

from .align import (
    Alignment,
    align_tilt_series,
    apply_alignment,
    compare_shifts,
    compare_with_tomviz,
    estimate_shifts,
    estimate_tilt_axis_offset,
    estimate_tilt_axis_rotation,
    tomviz_shifts,
)
from .filters import FILTER_SIGMA_PX, gaussian_filter_stack, gaussian_filter_variance
from .linemaps import clip_negative, line_energy_kev, line_intensities, rebin, synthesize_spectrum_image
from .raw import LineMapOptions, LineMaps, check_lines, load_line_maps
from .register import centre_of_mass, estimate_shift, normalise_shadowing, register_haadf_to_eds, shift_stack
from .response import fit_response_ratios
from .series import Preprocessed, PreprocessOptions, auto_pad, preprocess_tilt_series

__all__ = [
    "FILTER_SIGMA_PX",
    "Alignment", "LineMapOptions", "LineMaps", "PreprocessOptions", "Preprocessed", "align_tilt_series",
    "apply_alignment", "auto_pad", "centre_of_mass", "check_lines", "clip_negative", "compare_shifts",
    "compare_with_tomviz", "estimate_shift", "estimate_shifts", "estimate_tilt_axis_offset",
    "estimate_tilt_axis_rotation", "fit_response_ratios", "gaussian_filter_stack", "gaussian_filter_variance",
    "line_energy_kev", "line_intensities", "load_line_maps", "normalise_shadowing", "preprocess_tilt_series", "rebin",
    "register_haadf_to_eds", "shift_stack", "synthesize_spectrum_image", "tomviz_shifts",
]
