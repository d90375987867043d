"""Reconstruction algorithms, written once against the operator contract."""

from .hebt import ResponseRatios, estimate_response_ratios, hebt_data, hebt_operator, hebt_sirt
from .methods import METHODS, NEEDS_HAADF, RAW_COUNTS, SETUP, ChannelData, MethodResult, get_method, register
from .result import IterState, SolverResult
from .sirt import sirt, sirt_chunked, sirt_weights
# the regularised solvers (ls_tv, poisson_tv, fused_tv register themselves) and the parameter rules
from .fused import TVConstants, tv_constants, tv_solve
from .pdhg import pdhg
from .autoparam import choose_parameters

__all__ = [
    "METHODS", "NEEDS_HAADF", "ChannelData", "IterState", "MethodResult", "ResponseRatios",
    "SolverResult", "estimate_response_ratios", "get_method", "hebt_data", "hebt_operator",
    "hebt_sirt", "register", "sirt", "sirt_chunked", "sirt_weights", "RAW_COUNTS", "SETUP", "TVConstants",
    "tv_constants", "tv_solve", "pdhg", "choose_parameters",
]
