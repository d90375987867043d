"""Reconstruction algorithms, written once against the operator contract."""

from .hebt import ResponseRatios, estimate_response_ratios, hebt_data, hebt_operator, hebt_sirt
from .sirt import IterState, SolverResult, sirt, sirt_weights

__all__ = [
    "IterState", "ResponseRatios", "SolverResult", "estimate_response_ratios", "hebt_data",
    "hebt_operator", "hebt_sirt", "sirt", "sirt_weights",
]
