"""Reconstruction methods by name: one signature for every algorithm the pipeline can run.

A method takes the shared projector ``W`` of one slice and the data of a chunk
of slices (:class:`ChannelData`), and returns maps of every line with the factor
they are quantified by (``"f"``: maps ∝ f_A C_A rho, eq 12; ``"z"``: maps ∝ z_A C_A
rho, eq 18). Register a new method with :func:`register`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np

from ..projector.base import DTYPE, Operator
from .hebt import hebt_sirt
from .sirt import check_iterations, sirt

FactorKind = Literal["f", "z"]


@dataclass
class ChannelData:
    """The measured data of a chunk of slices, as operator columns.

    Attributes
    ----------
    lines : list of str
    eds : ndarray, (k, n_rays, s)
        EDS line data (counts), one column per slice.
    haadf : ndarray (n_rays, s) or None
    response_ratios : ndarray (k,) or None
        ``r_A`` (needed by bimodal methods).
    """

    lines: list[str]
    eds: np.ndarray
    haadf: np.ndarray | None = None
    response_ratios: np.ndarray | None = None

    @property
    def n_slices(self) -> int:
        return int(self.eds.shape[2])


@dataclass
class MethodResult:
    """Maps of every line: ``maps`` (k, n_vox, s); ``snapshots`` n -> maps for sweeps."""

    maps: np.ndarray
    factor: FactorKind
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)
    info: dict = field(default_factory=dict)


Method = Callable[..., MethodResult]
METHODS: dict[str, Method] = {}
NEEDS_HAADF: set[str] = set()
# methods whose data term is the counts' own likelihood: they get the unfiltered EDS data
RAW_COUNTS: set[str] = set()
# per method, options computed once from all of a volume's data (W, ChannelData) -> dict,
# handed to every chunk so that a slice does not depend on its chunk
SETUP: dict[str, Callable[[Operator, ChannelData], dict]] = {}


def register(name: str, needs_haadf: bool = False, raw_counts: bool = False,
             setup: Callable[[Operator, ChannelData], dict] | None = None):
    """Decorator: make a method available to the pipeline, the CLI and the studies.

    Parameters
    ----------
    name : str
    needs_haadf : bool
        The method needs HAADF data (and response ratios).
    raw_counts : bool
        The method models the counts' noise: the pipeline gives it the unfiltered EDS data.
    setup : callable, optional
        ``setup(W, data) -> options``: volume-level options from all the data (the
        pipeline calls it once and passes the options to every chunk).
    """

    def deco(fn: Method) -> Method:
        METHODS[name] = fn
        if needs_haadf:
            NEEDS_HAADF.add(name)
        if raw_counts:
            RAW_COUNTS.add(name)
        if setup is not None:
            SETUP[name] = setup
        return fn

    return deco


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown reconstruction method {name!r}; available: {sorted(METHODS)}") from None


def _split_channels(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """(n_vox, k * s) channel-major columns -> (k, n_vox, s)."""
    return np.ascontiguousarray(x.reshape(x.shape[0], k, s).transpose(1, 0, 2))


@register("eds_sirt")
def eds_sirt(W: Operator, data: ChannelData, *, n_iter: int = 100, snapshots=(), callback=None,
             **_) -> MethodResult:
    """EDS-only SIRT with non-negativity: every line of every slice in one batched solve."""
    n_iter = check_iterations(n_iter)
    k, m, s = data.eds.shape
    b = np.ascontiguousarray(data.eds.transpose(1, 0, 2).reshape(m, k * s), dtype=DTYPE)
    res = sirt(W, b, n_iter, snapshots=snapshots, callback=callback)
    return MethodResult(
        _split_channels(res.x, k, s), "f",
        {n: _split_channels(v, k, s) for n, v in res.snapshots.items()},
        {"n_iter": res.n_iter, "residual_norms": res.residual_norms},
    )


@register("hebt_sirt", needs_haadf=True)
def hebt_sirt_method(W: Operator, data: ChannelData, *, n_iter: int = 100, alpha: float = 0.8,
                     snapshots=(), callback=None, **_) -> MethodResult:
    """HEBT by SIRT on the stacked system (eq 17); maps are ``X^b_A``, quantified by z_A."""
    if data.haadf is None:
        raise ValueError("hebt_sirt needs HAADF data; use eds_sirt for EDS-only series")
    if data.response_ratios is None:
        raise ValueError("hebt_sirt needs response ratios r_A (estimate_response_ratios)")
    k, m, s = data.eds.shape
    res = hebt_sirt(W, data.haadf, list(data.eds), data.response_ratios, alpha, n_iter,
                    snapshots=snapshots, callback=callback)
    n = W.shape[1]
    split = lambda x: np.ascontiguousarray(x.reshape(k, n, s))  # noqa: E731
    return MethodResult(split(res.x), "z", {i: split(v) for i, v in res.snapshots.items()},
                        {"n_iter": res.n_iter, "alpha": alpha, "residual_norms": res.residual_norms})
