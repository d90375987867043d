"""Reconstruction algorithms, written once against the operator contract."""

from .hebt import ResponseRatios, estimate_response_ratios, hebt_data, hebt_operator, hebt_sirt
from .methods import METHODS, NEEDS_HAADF, ChannelData, MethodResult, get_method, register
from .sirt import IterState, SolverResult, sirt, sirt_weights
# regularised solvers (ls_tv, poisson_tv, fused_tv register themselves) and parameter choice
from .fused import TVResult, tv_solve  # noqa: E402
from .pdhg import pdhg  # noqa: E402
from . import autoparam  # noqa: E402,F401

__all__ = [
    "METHODS", "NEEDS_HAADF", "ChannelData", "IterState", "MethodResult", "ResponseRatios",
    "SolverResult", "estimate_response_ratios", "get_method", "hebt_data", "hebt_operator",
    "hebt_sirt", "register", "sirt", "sirt_weights", "TVResult", "tv_solve", "pdhg", "autoparam",
]
