"""Projection operators W (forward and adjoint) behind one contract.

``make_operator(geom, backend=...)`` is the one entry point:

- ``"batched"`` (default): the engine (:mod:`chemtomo.projector.batched`): W held
  once (from ASTRA's projector, float32), applied to blocks of slice-channel
  columns by compiled multithreaded kernels; SIRT on it runs fused (the plan is
  asked of the operator: :meth:`~chemtomo.projector.base.Operator.fused_sirt_plan`);
- ``"sparse"``: W as a scipy CSR matrix and its transpose (simple, slower);
- ``"astra"``: ASTRA's own CPU projectors, column by column (the reference);
- ``"astra_cuda"``: ASTRA's CUDA projector (a GPU is required; its model is ASTRA's
  GPU line/Joseph kernel, not ``kind``).
"""

from __future__ import annotations

from typing import Literal

from ..geometry import TiltGeometry
from ._threading import concurrent_workers, map_threads
from .astra_backend import AstraOperator, astra_matrix, gpu_available
from .attenuated import AttenuatedOperator, transmissions  # noqa: F401  (issue 14: absorption)
from .base import DTYPE, MatrixOperator, Operator, Scaled, dottest
from .batched import BatchedOperator, batched_operator, iter_slice_chunks
from .columns import HebtColumns, HebtColumnsModal
from .compose import BlockDiag, ChannelMix, HStack, RowScale, VStack
from .modality import ChannelSum, PerModality, per_modality, shares_geometry

Backend = Literal["batched", "sparse", "astra", "astra_cuda"]
BACKENDS = ("batched", "sparse", "astra", "astra_cuda")
#: The backend of :func:`make_operator` and of a pipeline run when none is given.
DEFAULT_BACKEND: Backend = "batched"


def make_operator(geom: TiltGeometry, backend: Backend = DEFAULT_BACKEND, kind: str = "strip",
                  **options) -> Operator:
    """The projection operator W for ``geom``.

    Parameters
    ----------
    geom : TiltGeometry
    backend : {"batched", "sparse", "astra", "astra_cuda"}
    kind : {"strip", "line", "linear"}
        ASTRA projector model (strip: beam-pixel intersection area, eq 9).
    **options
        For ``"batched"``: ``group``, ``block_width``, ``n_threads``
        (see :class:`~chemtomo.projector.batched.BatchedOperator`).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if options and backend != "batched":
        raise ValueError(f"options {sorted(options)} apply to the 'batched' backend only, not {backend!r}")
    if backend == "batched":
        return batched_operator(geom, kind, **options)
    if backend == "sparse":
        return MatrixOperator(astra_matrix(geom, kind))
    if backend == "astra":
        return AstraOperator(geom, kind)
    return AstraOperator(geom, kind, gpu=True)


def make_modality_operator(geom: TiltGeometry, haadf_geom: TiltGeometry | None = None,
                           backend: Backend = DEFAULT_BACKEND, kind: str = "strip", **options) -> Operator:
    """The projector of a series: ``make_operator(geom)``, or a :class:`PerModality` pair.

    Parameters
    ----------
    geom : TiltGeometry
        The EDS lines' (every stack's, when ``haadf_geom`` is None).
    haadf_geom : TiltGeometry, optional
        The HAADF's own (tilts of its own); None: one tilt set. Each projector is
        built once.
    backend, kind, **options
        As :func:`make_operator`.

    Returns
    -------
    Operator
    """
    W = make_operator(geom, backend, kind, **options)
    if haadf_geom is None:
        return W
    return per_modality(W, make_operator(haadf_geom, backend, kind, **options), geom, haadf_geom)


__all__ = [
    "BACKENDS", "DEFAULT_BACKEND", "DTYPE", "AstraOperator", "BatchedOperator", "BlockDiag",
    "ChannelMix", "ChannelSum", "HStack", "HebtColumns", "HebtColumnsModal", "MatrixOperator", "Operator",
    "PerModality", "RowScale", "Scaled", "VStack", "astra_matrix", "batched_operator", "concurrent_workers", "dottest",
    "gpu_available", "iter_slice_chunks", "make_modality_operator", "make_operator", "map_threads", "per_modality",
    "shares_geometry",
]
