"""ASTRA Toolbox backend: the reference projector, and the source of system matrices.

ASTRA's 2-D CPU projectors (``strip``: area of the beam-pixel intersection, the
``w_ij`` of Yuan 2020 eq 9; ``line``; ``linear``: Joseph) define W. Two operators
use them:

- :class:`AstraOperator` calls ASTRA's forward and back projection per column
  (the reference; ASTRA's CUDA projectors when a GPU is present);
- :func:`astra_matrix` returns W as a scipy CSR matrix for the batched backends.

Physical units: the volume geometry is in nm, so W's entries are path lengths
(strip: areas divided by the detector bin width) in nm.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..geometry import TiltGeometry
from .base import DTYPE, Operator

ProjectorKind = Literal["strip", "line", "linear"]
_KINDS = ("strip", "line", "linear")


def _astra():
    try:
        import astra
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise ImportError(
            "chemtomo needs the ASTRA Toolbox: pip install astra-toolbox==2.5.0"
        ) from exc
    return astra


def astra_geometries(geom: TiltGeometry):
    """ASTRA volume and projection geometries for ``geom`` (lengths in nm)."""
    astra = _astra()
    half = geom.n_grid * geom.grid_pixel_nm / 2
    vol = astra.create_vol_geom(geom.n_grid, geom.n_grid, -half, half, -half, half)
    proj = astra.create_proj_geom(
        "parallel", geom.pixel_nm, geom.n_pixels, np.deg2rad(geom.angles_deg)
    )
    return vol, proj


def _check_kind(kind: str) -> None:
    if kind not in _KINDS:
        raise ValueError(f"projector kind must be one of {_KINDS}, got {kind!r}")


def create_projector(geom: TiltGeometry, kind: ProjectorKind = "strip", gpu: bool = False) -> int:
    """An ASTRA projector id (caller frees it with ``astra.projector.delete``)."""
    astra = _astra()
    _check_kind(kind)
    vol, proj = astra_geometries(geom)
    return astra.create_projector("cuda" if gpu else kind, proj, vol)


def astra_matrix(geom: TiltGeometry, kind: ProjectorKind = "strip"):
    """W as a scipy CSR float32 matrix, shape ``(n_rays, n_voxels)``."""
    import scipy.sparse as sp

    astra = _astra()
    pid = create_projector(geom, kind)
    try:
        mid = astra.projector.matrix(pid)
        try:
            W = astra.matrix.get(mid)
        finally:
            astra.matrix.delete(mid)
    finally:
        astra.projector.delete(pid)
    return sp.csr_matrix(W, dtype=DTYPE)


def gpu_available() -> bool:
    """True when ASTRA was built with CUDA and sees a GPU."""
    astra = _astra()
    try:
        return bool(astra.use_cuda())
    except Exception:  # pragma: no cover - depends on the machine
        return False


class AstraOperator(Operator):
    """W through ASTRA's own forward and back projectors, one column at a time.

    The reference backend: slow for many columns, exact by definition.

    Parameters
    ----------
    geom : TiltGeometry
    kind : {"strip", "line", "linear"}
        CPU projector (ignored with ``gpu=True``).
    gpu : bool
        Use ASTRA's CUDA projector (raises if no GPU is present).
    """

    def __init__(self, geom: TiltGeometry, kind: ProjectorKind = "strip", gpu: bool = False):
        if gpu and not gpu_available():
            raise RuntimeError("gpu=True but ASTRA sees no CUDA GPU on this machine; use gpu=False")
        self.geom, self.kind, self.gpu = geom, kind, gpu
        self.shape = (geom.n_rays, geom.n_voxels)
        self._pid = create_projector(geom, kind, gpu)

    def __del__(self):
        pid = getattr(self, "_pid", None)
        if pid is not None:
            try:
                _astra().projector.delete(pid)
            except Exception:
                pass

    def thread_safe(self) -> bool:
        """False: ASTRA's data and projector objects are shared state of its library, not per call."""
        return False

    def _forward(self, x):
        astra = _astra()
        g = self.geom
        out = np.empty(self.shape[0:1] + x.shape[1:], DTYPE)
        for j in range(x.shape[1]):
            img = x[:, j].reshape(g.n_grid, g.n_grid)
            sid, sino = astra.create_sino(img, self._pid)
            astra.data2d.delete(sid)
            out[:, j] = sino.ravel()
        return out

    def _adjoint(self, y):
        astra = _astra()
        g = self.geom
        out = np.empty((self.shape[1], y.shape[1]), DTYPE)
        for j in range(y.shape[1]):
            sino = y[:, j].reshape(g.n_tilts, g.n_pixels)
            bid, img = astra.create_backprojection(sino, self._pid)
            astra.data2d.delete(bid)
            out[:, j] = img.ravel()
        return out
