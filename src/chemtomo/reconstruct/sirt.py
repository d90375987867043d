"""SIRT with non-negativity, written once against the operator contract.

    x_{t+1} = max(0, x_t + lambda C A^T R (b - A x_t))

with ``R = diag(1 / A 1)`` (inverse ray sums) and ``C = diag(1 / A^T 1)`` (inverse
pixel sums). Empty rays (``A 1 = 0``) and pixels no ray meets (``A^T 1 = 0``) get
weight 0: they neither contribute nor change. This is ASTRA's SIRT
(``MinConstraint = 0``) and CIL's ``SIRT._set_up_weights``.

Every column of ``b`` is an independent problem (a slice, a channel): one call
reconstructs them all.

Fast path: when the operator is built on the batched engine
(:class:`chemtomo.projector.batched.BatchedOperator`, alone, scaled, or inside a
``ChannelMix`` such as HEBT's), each iteration is one fused pass over W^T
(:func:`chemtomo.projector.batched.fused_sirt_plan`); every other operator takes
the generic path below. A callback then sees a copy of ``x``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from ..projector.base import DTYPE, Operator, as_columns
from ..projector.batched import fused_sirt_plan

_EPS = 1e-12


def sirt_weights(op: Operator) -> tuple[np.ndarray, np.ndarray]:
    """``(R, C)``: inverse ray sums ``(n_out, 1)`` and inverse pixel sums ``(n_in, 1)``; 0 where empty."""
    rs = op.row_sums().astype(np.float64)
    cs = op.col_sums().astype(np.float64)
    R = np.where(rs > _EPS, 1.0 / np.where(rs > _EPS, rs, 1.0), 0.0).astype(DTYPE)[:, None]
    C = np.where(cs > _EPS, 1.0 / np.where(cs > _EPS, cs, 1.0), 0.0).astype(DTYPE)[:, None]
    return R, C


@dataclass
class IterState:
    """What a callback sees after each iteration."""

    iteration: int
    x: np.ndarray
    residual_norm: np.ndarray  # (k,) ||b - A x_t|| per column, before the update of step t


@dataclass
class SolverResult:
    """The result of an iterative solver.

    Attributes
    ----------
    x : ndarray, (n_in, k)
        Final estimate.
    n_iter : int
        Iterations done.
    snapshots : dict[int, ndarray]
        Copies of ``x`` after the iterations asked for in ``snapshots``.
    residual_norms : ndarray, (n_iter, k)
        ``||b - A x||`` per iteration and column (before each update).
    info : dict
        Solver-specific details.
    """

    x: np.ndarray
    n_iter: int
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)
    residual_norms: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    info: dict = field(default_factory=dict)


def check_iterations(n_iter) -> int:
    if isinstance(n_iter, bool) or not float(n_iter).is_integer() or int(n_iter) < 1:
        raise ValueError(f"the number of iterations must be a positive integer, got {n_iter!r}")
    return int(n_iter)


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

    Returns
    -------
    SolverResult
    """
    n_iter = check_iterations(n_iter)
    if not 0 < relaxation < 2:
        raise ValueError(f"relaxation must be in (0, 2), got {relaxation}")
    b2, vec = as_columns(b, op.shape[0], "b")
    if not np.all(np.isfinite(b2)):
        raise ValueError("the data contain NaN or infinite values; clean or mask them before reconstructing")
    R, C = weights if weights is not None else sirt_weights(op)
    k = b2.shape[1]
    x_start = None if x0 is None else as_columns(x0, op.shape[1], "x0")[0]
    wanted = {int(s) for s in snapshots}
    bad = [s for s in wanted if not 1 <= s <= n_iter]
    if bad:
        raise ValueError(f"snapshots must lie in [1, n_iter={n_iter}], got {sorted(bad)}")
    snaps: dict[int, np.ndarray] = {}
    res = np.empty((n_iter, k))
    done = 0
    plan = fused_sirt_plan(op, b2, x_start, R, C, relaxation, nonneg)
    if plan is not None:
        # the batched engine's fused iteration (one pass over W^T); same maths as below
        for it in range(1, n_iter + 1):
            res[it - 1] = plan.step()
            done = it
            if it in wanted or callback is not None:
                xt = plan.x()
                if it in wanted:
                    snaps[it] = xt[:, 0].copy() if vec else xt
                if callback is not None and callback(IterState(it, xt, res[it - 1])):
                    break
        x = plan.x()
        return SolverResult(
            x=x[:, 0] if vec else x, n_iter=done, snapshots=snaps, residual_norms=res[:done],
            info={"method": "sirt", "nonneg": nonneg, "relaxation": relaxation, "engine": "batched-fused"},
        )
    x = np.zeros((op.shape[1], k), DTYPE) if x_start is None else x_start.copy()
    for it in range(1, n_iter + 1):
        r = b2 - op._forward(x)
        res[it - 1] = np.sqrt(np.einsum("ij,ij->j", r, r, dtype=np.float64))
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
            break
    return SolverResult(
        x=x[:, 0] if vec else x, n_iter=done, snapshots=snaps, residual_norms=res[:done],
        info={"method": "sirt", "nonneg": nonneg, "relaxation": relaxation, "engine": "generic"},
    )
