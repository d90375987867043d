"""Total variation: the discrete gradient, its adjoint, the TV norm and its proximal map.

Images are the channel-stacked columns every solver works on: ``x`` of shape
``(k * ny * nx, m)`` holds ``k`` channels of an ``ny x nx`` slice for ``m``
independent problems (slices, parameter values, folds). The gradient is the
forward difference with Neumann boundary (the difference leaving the grid is 0),
the discretisation of Chambolle (2004) and of scikit-image's
``denoise_tv_chambolle``::

    (D x)_0[c, i, j] = x[c, i+1, j] - x[c, i, j]   (0 on the last row)
    (D x)_1[c, i, j] = x[c, i, j+1] - x[c, i, j]   (0 on the last column)

``D x`` is laid out ``(k, 2, ny, nx)`` per column. The isotropic TV sums, over
pixels, the Euclidean norm of the two differences of each channel; the coupled
(vectorial, "shared edges") TV of Sapiro & Ringach (1996) / Bresson & Chan (2008)
sums, over pixels, the norm over both differences *and* all channels, so an
edge costs less when the channels jump at the same place::

    TV(x)         = sum_c sum_px sqrt(sum_d (D x)_d[c]^2)
    TV_coupled(x) = sum_px sqrt(sum_c sum_d (D x)_d[c]^2)
"""

from __future__ import annotations

import numpy as np

from ..projector.base import DTYPE, Operator, as_columns
from . import _tv_kernels as _k


def _buffer(out: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """``out`` when it is a float32 C-contiguous array of ``shape``, else a new empty one."""
    if out is not None and out.shape == shape and out.dtype == DTYPE and out.flags.c_contiguous:
        return out
    return np.empty(shape, DTYPE)


class Gradient2D(Operator):
    """Forward-difference gradient of ``k`` channel images of ``ny x nx`` pixels.

    ``shape = (2 * k * ny * nx, k * ny * nx)``; the adjoint is minus the divergence.

    Parameters
    ----------
    image_shape : (ny, nx)
    n_channels : int
    """

    def __init__(self, image_shape: tuple[int, int], n_channels: int = 1):
        ny, nx = (int(s) for s in image_shape)
        if ny < 2 or nx < 2:
            raise ValueError(f"images must be at least 2 x 2 pixels, got {image_shape}")
        if int(n_channels) < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}")
        self.image_shape = (ny, nx)
        self.k = int(n_channels)
        n = self.k * ny * nx
        self.shape = (2 * n, n)

    def _forward(self, x):
        return self._forward_into(x, None)

    def _adjoint(self, y):
        return self._adjoint_into(y, None)

    def _forward_into(self, x, out):
        """``D x``, written into ``out`` ``(2 k ny nx, m)`` when it is a float32 C-contiguous buffer of that shape."""
        ny, nx = self.image_shape
        m = x.shape[1]
        g = _buffer(out, (self.shape[0], m)).reshape(self.k, 2, ny, nx, m)
        _k.gradient(x.reshape(self.k, ny, nx, m), g)
        return g.reshape(-1, m)

    def _adjoint_into(self, y, out):
        """``D^T y``, written into ``out`` ``(k ny nx, m)`` when it is a float32 C-contiguous buffer of that shape."""
        ny, nx = self.image_shape
        m = y.shape[1]
        x = _buffer(out, (self.shape[1], m)).reshape(self.k, ny, nx, m)
        _k.gradient_adjoint(np.ascontiguousarray(y).reshape(self.k, 2, ny, nx, m), x)
        return x.reshape(-1, m)

    def abs_row_sums(self) -> np.ndarray:
        """``|D| 1`` ``(n_out, 1)``: 2 for every difference inside the grid, 0 for the boundary ones."""
        ny, nx = self.image_shape
        r = np.zeros((self.k, 2, ny, nx), DTYPE)
        r[:, 0, :-1] = 2
        r[:, 1, :, :-1] = 2
        return r.reshape(-1, 1)

    def abs_col_sums(self, row_weights: np.ndarray | None = None) -> np.ndarray:
        """``|D|^T w``, shape ``(n_in, 1)`` or ``(n_in, m)``.

        With ``w = 1`` it counts how many differences each pixel enters (2 to 4).
        """
        ny, nx = self.image_shape
        if row_weights is None:
            c = np.zeros((self.k, ny, nx), DTYPE)
            c[:, :-1] += 1
            c[:, 1:] += 1
            c[:, :, :-1] += 1
            c[:, :, 1:] += 1
            return c.reshape(-1, 1)
        w = np.asarray(row_weights, DTYPE)
        w = np.broadcast_to(w, (self.shape[0], w.shape[1])).reshape(self.k, 2, ny, nx, -1)
        c = np.zeros((self.k, ny, nx, w.shape[-1]), DTYPE)
        c[:, :-1] += w[:, 0, :-1]
        c[:, 1:] += w[:, 0, :-1]
        c[:, :, :-1] += w[:, 1, :, :-1]
        c[:, :, 1:] += w[:, 1, :, :-1]
        return c.reshape(-1, c.shape[-1])


def group_norm_sum(g: np.ndarray, k: int, image_shape, coupled: bool) -> np.ndarray:
    """``(m,)`` float64: the sum over pixels of the pointwise norms of a gradient field ``(2 k ny nx, m)``."""
    ny, nx = image_shape
    g5 = np.ascontiguousarray(g, DTYPE).reshape(k, 2, ny, nx, -1)
    return _k.norm_sums(g5, bool(coupled)).sum(axis=0)


def tv_norm(x: np.ndarray, image_shape: tuple[int, int], n_channels: int = 1,
            coupled: bool = False) -> np.ndarray:
    """Isotropic TV of every column of ``x`` ``(k ny nx, m)``: ``(m,)`` (float64).

    ``coupled`` takes the norm over channels too (vectorial TV, shared edges).
    """
    D = Gradient2D(image_shape, n_channels)
    x2, vec = as_columns(x, D.shape[1], "x")
    out = group_norm_sum(D._forward(x2), D.k, image_shape, coupled)
    return out[0] if vec else out


def project_l2_balls(p: np.ndarray, radius, k: int, image_shape, coupled: bool) -> np.ndarray:
    """Project a gradient field ``(2 k ny nx, m)`` pointwise onto balls of ``radius`` (in place).

    ``radius`` is a scalar or ``(m,)`` (one per column). This is the proximal map of
    the conjugate of ``radius * ||.||_{2,1}`` (any step size).
    """
    r = np.ascontiguousarray(np.broadcast_to(np.asarray(radius, DTYPE), (p.shape[1],)))
    ny, nx = image_shape
    if not p.flags.c_contiguous:
        raise ValueError("project_l2_balls works in place on a C-contiguous field")
    _k.project_balls(p.reshape(k, 2, ny, nx, -1), r, bool(coupled))
    return p


def tv_prox(
    f: np.ndarray, weight, image_shape: tuple[int, int], n_channels: int = 1, *,
    coupled: bool = False, nonneg: bool = False, n_iter: int = 100, tol: float = 0.0,
    dual0: np.ndarray | None = None, return_dual: bool = False,
):
    """``argmin_u 1/2 ||u - f||^2 + weight * TV(u)`` (optionally with ``u >= 0``), column-wise.

    Fast gradient projection (FGP) on the dual, Beck & Teboulle (2009): exact up to
    the iteration count, with the constraint handled inside (their constrained
    denoising), so it is the proximal map of ``weight TV + i_{u>=0}``.

    Parameters
    ----------
    f : ndarray, (k ny nx,) or (k ny nx, m)
    weight : float or array (m,)
        TV weight per column (>= 0). Same convention as scikit-image's
        ``denoise_tv_chambolle(image, weight=weight)`` (isotropic TV, forward
        differences, Neumann boundary): the two minimise the same functional.
    image_shape : (ny, nx)
    n_channels : int
    coupled : bool
        Vectorial TV over channels (shared edges).
    nonneg : bool
        Constrain ``u >= 0``.
    n_iter : int
        FGP iterations.
    tol : float
        Stop early when the relative change of ``u`` falls below ``tol`` (0: never).
    dual0 : ndarray, optional
        Warm start for the dual field ``(2 k ny nx, m)`` (as returned with ``return_dual``).
    return_dual : bool
        Also return the final dual field (to warm-start the next call).

    Returns
    -------
    u : ndarray like ``f``; and the dual field if ``return_dual``.

    Notes
    -----
    With ``u = P_C(f - w D^T p)`` the dual is ``min_{|p_px| <= 1} -||H_C(f - w D^T p)||^2
    + ||f - w D^T p||^2``; its gradient is Lipschitz with constant ``2 w^2 ||D||^2 <= 16 w^2``,
    hence the step ``1 / (8 w)`` on ``D P_C(...)`` below.
    """
    D = Gradient2D(image_shape, n_channels)
    f2, vec = as_columns(f, D.shape[1], "f")
    m = f2.shape[1]
    w = np.broadcast_to(np.asarray(weight, np.float64), (m,)).astype(DTYPE)
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError(f"the TV weight must be finite and >= 0, got {weight}")
    active = w > 0
    wsafe = np.where(active, w, 1).astype(DTYPE)
    p = np.zeros(D.shape[:1] + (m,), DTYPE) if dual0 is None else np.array(dual0, DTYPE)
    r = p.copy()
    t = 1.0
    clip = (lambda v: np.maximum(v, 0, out=v)) if nonneg else (lambda v: v)
    u_old = None
    for _ in range(int(n_iter)):
        u = clip(f2 - w * D._adjoint(r))
        q = r + D._forward(u) / (8 * wsafe)
        p_new = project_l2_balls(q, 1.0, D.k, image_shape, coupled)
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        r = p_new + ((t - 1) / t_new) * (p_new - p)
        p, t = p_new, t_new
        if tol > 0:
            if u_old is not None:
                du = np.linalg.norm(u - u_old) / max(np.linalg.norm(u), 1e-30)
                if du < tol:
                    break
            u_old = u
    u = clip(f2 - w * D._adjoint(p))
    u[:, ~active] = clip(f2[:, ~active].copy())
    u = u[:, 0] if vec else u
    return (u, p) if return_dual else u
