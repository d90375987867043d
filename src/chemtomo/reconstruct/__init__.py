"""Reconstruction algorithms, written once against the operator contract."""

from .hebt import ResponseRatios, estimate_response_ratios, hebt_data, hebt_operator, hebt_sirt
from .methods import METHODS, NEEDS_HAADF, ChannelData, MethodResult, get_method, register
from .sirt import IterState, SolverResult, sirt, sirt_weights

__all__ = [
    "METHODS", "NEEDS_HAADF", "ChannelData", "IterState", "MethodResult", "ResponseRatios",
    "SolverResult", "estimate_response_ratios", "get_method", "hebt_data", "hebt_operator",
    "hebt_sirt", "register", "sirt", "sirt_weights",
]
