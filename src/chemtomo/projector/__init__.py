"""Projection operators W (forward and adjoint) behind one contract.

``make_operator(geom, backend=...)`` is the one entry point:

- ``"sparse"`` (default): W held once as CSR float32 (built from ASTRA's
  projector), applied to all slice-channel columns in one product;
- ``"astra"``: ASTRA's own projectors, column by column (the reference; GPU when
  present).
"""

from __future__ import annotations

from typing import Literal

from ..geometry import TiltGeometry
from .astra_backend import AstraOperator, astra_matrix, gpu_available
from .base import (
    DTYPE, BlockDiag, ChannelMix, HStack, MatrixOperator, Operator, Scaled, VStack, dottest,
)

Backend = Literal["sparse", "astra"]
BACKENDS = ("sparse", "astra")


def make_operator(geom: TiltGeometry, backend: Backend = "sparse", kind: str = "strip") -> Operator:
    """The projection operator W for ``geom``.

    Parameters
    ----------
    geom : TiltGeometry
    backend : {"sparse", "astra"}
    kind : {"strip", "line", "linear"}
        ASTRA projector model (strip: beam-pixel intersection area, eq 9).
    """
    if backend == "sparse":
        return MatrixOperator(astra_matrix(geom, kind))
    if backend == "astra":
        return AstraOperator(geom, kind)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


__all__ = [
    "BACKENDS", "DTYPE", "AstraOperator", "BlockDiag", "ChannelMix", "HStack", "MatrixOperator",
    "Operator", "Scaled", "VStack", "astra_matrix", "dottest", "gpu_available", "make_operator",
]
