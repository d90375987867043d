"""SIRT with non-negativity, written once against the operator contract.

    x_{t+1} = max(0, x_t + lambda C A^T R (b - A x_t))

with ``R = diag(m / |A| 1)`` (inverse ray sums, times the ray mask ``m``) and
``C = diag(1 / |A|^T m)`` (inverse pixel sums over the used rays); ``m = 1``
without a mask. This is ASTRA's SIRT (``MinConstraint = 0``) and CIL's
``SIRT._set_up_weights``; the sums are asked of the operator
(:meth:`~chemtomo.projector.base.Operator.abs_row_sums`,
:meth:`~chemtomo.projector.base.Operator.abs_col_sums`).

**Empty rays and empty pixels.** A ray whose sum is exactly 0 (it meets no pixel)
and a pixel whose sum over the used rays is exactly 0 (no used ray meets it) get
weight 0: the ray contributes nothing, the pixel keeps its start value. The test
is ``sum > 0``, with no tolerance: the sums are float32 sums of non-negative
weights, so a ray is empty exactly when it meets nothing. (Before one SIRT
served every caller, the unmasked loop tested ``sum > 1e-12`` and the masked one
``sum > 0``; no ray or pixel sum of the geometries in use lies in ``(0, 1e-12]``,
so both rules gave the same weights and the results are unchanged.)

Every column of ``b`` is an independent problem (a slice, a channel, a
cross-validation fold): one call reconstructs them all. A per-column ray mask
(``ray_mask``, 1 = used, 0 = held out) removes rays from a column's problem
(held-out rays in cross-validation).

Fast path: without a mask, the operator is asked for a fused plan
(:meth:`~chemtomo.projector.base.Operator.fused_sirt_plan`; the batched engine,
alone, scaled, or inside a ``ChannelMix`` such as HEBT's, has one: one pass over
W^T per iteration); otherwise the generic loop below runs. A callback then sees
a copy of ``x``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from ..projector.base import DTYPE, Operator, as_columns
from ..projector.batched import iter_slice_chunks
from .result import IterState, SolverResult, check_iterations

__all__ = ["IterState", "SolverResult", "check_iterations", "sirt", "sirt_chunked", "sirt_weights"]


def _ray_mask(ray_mask, n_out: int) -> np.ndarray:
    mk = np.asarray(ray_mask, DTYPE)
    if mk.ndim == 1:
        mk = mk[:, None]
    if mk.ndim != 2 or mk.shape[0] != n_out:
        raise ValueError(f"ray_mask must be (n_out,) or (n_out, k) with n_out = {n_out}, got shape {mk.shape}")
    if np.any((mk != 0) & (mk != 1)):
        raise ValueError("ray_mask must hold 0 (held out) or 1 (used)")
    return mk


def sirt_weights(op: Operator, ray_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(R, C)``: masked inverse ray sums and inverse pixel sums over the used rays.

    Parameters
    ----------
    op : Operator
    ray_mask : ndarray, (n_out,), (n_out, 1) or (n_out, k), optional
        1 for a used ray, 0 for a held-out one (default: all used).

    Returns
    -------
    R : ndarray, float32, (n_out, 1) or (n_out, k)
        ``m / |A| 1``, 0 where the ray sum is 0.
    C : ndarray, float32, (n_in, 1) or (n_in, k)
        ``1 / |A|^T m``, 0 where the pixel sum is 0.
    """
    mk = np.ones((op.shape[0], 1), DTYPE) if ray_mask is None else _ray_mask(ray_mask, op.shape[0])
    rs = op.abs_row_sums().astype(np.float64)
    R = np.where(rs > 0, mk / np.where(rs > 0, rs, 1.0), 0.0).astype(DTYPE)
    cs = op.abs_col_sums(None if ray_mask is None else mk).astype(np.float64)
    C = np.where(cs > 0, 1.0 / np.where(cs > 0, cs, 1.0), 0.0).astype(DTYPE)
    return R, C


def sirt(
    op: Operator,
    b: np.ndarray,
    n_iter: int,
    *,
    x0: np.ndarray | None = None,
    nonneg: bool = True,
    relaxation: float = 1.0,
    snapshots: Iterable[int] = (),
    callback: Callable[[IterState], bool | None] | None = None,
    weights: tuple[np.ndarray, np.ndarray] | None = None,
    ray_mask: np.ndarray | None = None,
) -> SolverResult:
    """SIRT with optional non-negativity on every column of ``b`` at once.

    Parameters
    ----------
    op : Operator
        ``A``, shape ``(n_out, n_in)``.
    b : ndarray, (n_out,) or (n_out, k)
        Data, one problem per column.
    n_iter : int
        Iterations (> 0).
    x0 : ndarray, optional
        Start (default zeros).
    nonneg : bool
        Clip at zero after each update (Yuan 2020, section 2.1).
    relaxation : float
        ``lambda`` in (0, 2).
    snapshots : iterable of int
        Iteration counts at which to keep a copy of ``x`` (one run serves a sweep over n).
    callback : callable, optional
        Called with an :class:`IterState` after every iteration; returning True stops.
    weights : (R, C), optional
        Precomputed :func:`sirt_weights` (reused across calls with the same operator).
    ray_mask : ndarray, (n_out,), (n_out, 1) or (n_out, k), optional
        1 for a ray a column uses, 0 for one it holds out (cross-validation): a
        held-out ray enters neither the update nor the pixel weights. Runs the
        generic loop. Not together with ``weights``.

    Returns
    -------
    SolverResult
        ``residual_norms`` over the used rays; ``info["engine"]`` says which path ran.
    """
    n_iter = check_iterations(n_iter)
    if not 0 < relaxation < 2:
        raise ValueError(f"relaxation must be in (0, 2), got {relaxation}")
    b2, vec = as_columns(b, op.shape[0], "b")
    if not np.all(np.isfinite(b2)):
        raise ValueError("the data contain NaN or infinite values; clean or mask them before reconstructing")
    if ray_mask is not None and weights is not None:
        raise ValueError("give ray_mask or weights, not both (the mask sets the weights)")
    mk = None if ray_mask is None else _ray_mask(ray_mask, op.shape[0])
    if mk is not None and mk.shape[1] not in (1, b2.shape[1]):
        raise ValueError(f"ray_mask has {mk.shape[1]} columns, the data {b2.shape[1]}")
    R, C = weights if weights is not None else sirt_weights(op, mk)
    k = b2.shape[1]
    x_start = None if x0 is None else as_columns(x0, op.shape[1], "x0")[0]
    wanted = {int(s) for s in snapshots}
    bad = [s for s in wanted if not 1 <= s <= n_iter]
    if bad:
        raise ValueError(f"snapshots must lie in [1, n_iter={n_iter}], got {sorted(bad)}")
    snaps: dict[int, np.ndarray] = {}
    res = np.empty((n_iter, k))
    done = 0
    stop = "n_iter"
    info = {"method": "sirt", "nonneg": nonneg, "relaxation": relaxation}
    plan = None if mk is not None else op.fused_sirt_plan(b2, x_start, R, C, relaxation, nonneg)
    if plan is not None:
        # the operator's fused iteration (the batched engine: one pass over W^T); same maths as below
        for it in range(1, n_iter + 1):
            res[it - 1] = plan.step()
            done = it
            if it in wanted or callback is not None:
                xt = plan.x()
                if it in wanted:
                    snaps[it] = xt[:, 0].copy() if vec else xt
                if callback is not None and callback(IterState(it, xt, res[it - 1])):
                    stop = "callback"
                    break
        x = plan.x()
        return SolverResult(x=x[:, 0] if vec else x, n_iter=done, snapshots=snaps, residual_norms=res[:done],
                            stop_reason=stop, info={**info, "engine": "batched-fused"})
    x = np.zeros((op.shape[1], k), DTYPE) if x_start is None else x_start.copy()
    mk_full = None if mk is None else np.broadcast_to(mk, b2.shape)
    for it in range(1, n_iter + 1):
        r = b2 - op._forward(x)
        if mk_full is None:
            res[it - 1] = np.sqrt(np.einsum("ij,ij->j", r, r, dtype=np.float64))
        else:
            res[it - 1] = np.sqrt(np.einsum("ij,ij,ij->j", r, r, mk_full, dtype=np.float64))
        r *= R
        upd = op._adjoint(r)
        upd *= C
        if relaxation != 1.0:
            upd *= relaxation
        x += upd
        if nonneg:
            np.maximum(x, 0, out=x)
        done = it
        if it in wanted:
            snaps[it] = x[:, 0].copy() if vec else x.copy()
        if callback is not None and callback(IterState(it, x, res[it - 1])):
            stop = "callback"
            break
    return SolverResult(x=x[:, 0] if vec else x, n_iter=done, snapshots=snaps, residual_norms=res[:done],
                        stop_reason=stop, info={**info, "engine": "generic"})


def sirt_chunked(op: Operator, b: np.ndarray, n_iter: int, budget_bytes: int, *,
                 out: np.ndarray | None = None, **sirt_kwargs) -> SolverResult:
    """SIRT on the columns of ``b`` in chunks that fit ``budget_bytes``; same result as one call.

    Columns are independent problems and the engine's arithmetic per column does
    not depend on its neighbours, so the chunked result equals the one-shot result
    bit for bit. ``out`` may be a ``numpy.memmap`` for a volume larger than memory
    (``b`` too).

    Parameters
    ----------
    op : Operator
        An operator with a fused SIRT (:meth:`~chemtomo.projector.base.Operator.sirt_memory`
        not None: built on a ``BatchedOperator``, ``W`` or a ``ChannelMix`` of it).
    b : ndarray, (n_out, S)
    n_iter : int
    budget_bytes : int
    out : ndarray, (n_in, S), optional
    **sirt_kwargs
        Passed to :func:`sirt` (relaxation, nonneg, weights).

    Returns
    -------
    SolverResult
        ``x`` is ``out``; ``info["chunks"]`` lists the ``(start, stop)`` column ranges.
    """
    memory = op.sirt_memory()
    if memory is None:
        raise TypeError(f"sirt_chunked needs an operator with a fused SIRT (built on BatchedOperator), got {op!r}")
    fixed, per_slice = memory
    if b.ndim != 2 or b.shape[0] != op.shape[0]:
        raise ValueError(f"b must have shape ({op.shape[0]}, S), got {b.shape}")
    S = b.shape[1]
    if out is None:
        out = np.empty((op.shape[1], S), DTYPE)
    if "weights" not in sirt_kwargs:
        sirt_kwargs["weights"] = sirt_weights(op)
    chunks, norms, done = [], [], []
    for sl in iter_slice_chunks(S, per_slice, budget_bytes, fixed_bytes=fixed):
        res = sirt(op, np.ascontiguousarray(b[:, sl], dtype=DTYPE), n_iter, **sirt_kwargs)
        out[:, sl] = res.x
        chunks.append((sl.start, sl.stop))
        norms.append(res.residual_norms)
        done.append(res.n_iter)
    return SolverResult(
        x=out, n_iter=min(done) if done else 0,
        residual_norms=np.concatenate(norms, axis=1) if norms else np.zeros((0, 0)),
        info={"method": "sirt", "engine": "chunked", "chunks": chunks},
    )
