"""Reconstruction algorithms, written once against the operator contract.

Every method the pipeline can run is one registered object (:mod:`.registry`,
the built-ins in :mod:`.methods`): ``get_method("fused_tv")`` gives its parameters,
needs, set-up, automatic rule and memory model.
"""

from .autoparam import choose_parameters
from .fused import TVConstants, tv_constants, tv_solve
from .hebt import (
    ResponseRatios,
    estimate_response_ratios,
    estimate_response_ratios_tilts,
    hebt_data,
    hebt_operator,
    hebt_sirt,
)

# the built-in methods register themselves on import
from .methods import EdsSirtParams, FusedTvParams, HebtSirtParams, TvParams
from .pdhg import pdhg
from .registry import (
    METHODS,
    ChannelData,
    Method,
    MethodParams,
    MethodResult,
    RuleInputs,
    WarmStart,
    canonical_name,
    get_method,
    method_names,
    register,
    unregister,
)
from .result import IterState, SolverResult
from .sirt import sirt, sirt_chunked, sirt_weights

__all__ = [
    "METHODS", "ChannelData", "EdsSirtParams", "FusedTvParams", "HebtSirtParams", "IterState", "Method",
    "MethodParams", "MethodResult", "ResponseRatios", "RuleInputs", "SolverResult", "TVConstants",
    "TvParams", "WarmStart", "canonical_name", "choose_parameters", "estimate_response_ratios",
    "estimate_response_ratios_tilts", "get_method", "hebt_data",
    "hebt_operator", "hebt_sirt", "method_names", "pdhg", "register", "sirt", "sirt_chunked", "sirt_weights",
    "tv_constants", "tv_solve", "unregister",
]
