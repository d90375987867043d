"""Preconditioned primal-dual hybrid gradient (Chambolle-Pock) with non-negativity.

Solves, for every column of the unknown at once,

    min_{x >= 0}  sum_t F_t(K_t x)

where each term is a linear operator ``K_t`` (the operator contract) and a convex
function ``F_t`` whose conjugate has a cheap proximal map: weighted least squares,
the Poisson negative log-likelihood (Kullback-Leibler) and the (group) l2,1 norm of
a gradient (total variation). The functionals are in :mod:`.functionals` (re-exported
here). The iteration (Chambolle & Pock 2011, with the
diagonal preconditioners of Pock & Chambolle 2011, alpha = 1)::

    y_t   <- prox_{S_t F_t^*}(y_t + S_t K_t xbar)          for every term t
    x_new <- max(0, x - T sum_t K_t^T y_t)
    xbar  <- 2 x_new - x

with ``T = theta / sum_t |K_t|^T 1`` and ``S_t = 1 / (theta |K_t| 1)``; convergence
holds for every ``theta > 0`` (``theta`` only trades primal against dual speed).
The sums ``|K_t| 1`` and ``|K_t|^T 1`` (over the rows a term uses) are asked of
the operator (:meth:`~chemtomo.projector.base.Operator.abs_row_sums`,
:meth:`~chemtomo.projector.base.Operator.abs_col_sums`). Rows or columns with zero
sums get step 0. ``K_t x`` is carried from one iteration
to the next (``K xbar = 2 K x_new - K x``), so the primal objective of every
column is known at every iteration for free: one forward and one adjoint pass of
each operator per iteration.

Convergence monitoring (available to callbacks, stored in ``info``): the primal
objective, and the primal and dual residuals of the optimality conditions
``0 in dG(x) + K^T y``, ``0 in dF^*(y) - K x``, in the preconditioned norms::

    r_p = T^-1 (x - x_new)                       (in dG(x_new) + K^T y_new)
    r_d = S^-1 (y - y_new) + K (xbar - x_new)    (in dF^*(y_new) - K x_new)

Both vanish at a saddle point.

Adaptive step balance (``adaptive=True``): ``theta`` becomes one value per column,
moved every ``adapt_every`` iterations by residual balancing (Goldstein, Li, Yuan, Esser
& Baraniuk 2015): up by ``1 / (1 - alpha)`` when ``||r_p||`` exceeds 1.5 ``||r_d||``, down
by ``1 - alpha`` in the reverse case (both norms taken with the steps at ``theta_unit``),
``alpha`` (from 0.5) shrinking by 0.95 at each move so that the steps settle.

The element-wise passes (each term's dual step, the primal step with its clipping, the
extrapolation of ``K x``) run as compiled kernels (:mod:`._pdhg_kernels`) where the
functionals and arrays allow, in the numpy expressions' float32 operations and order:
the same iterates bit for bit (``compiled=False`` runs the numpy expressions). A TV term last
(``Scaled(Gradient2D, c)`` with :class:`GroupL21`, the regularised models') runs from the
primal iterates instead of its gradient fields (``fuse_tv``, :mod:`._pdhg_tv`): ``K xbar``
formed inside its dual step from ``x`` and the previous ``x``, ``c D^T y`` inside the primal
step; the same bits again.

Stopping rule (``tol > 0``): after ``min_iter`` iterations, stop when, for every
column, the relative objective change over the last ``window`` monitored
iterations and the relative primal change ``||x_new - x|| / ||x_new||`` are both
below ``tol``; otherwise the iteration budget ``n_iter`` is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from ..projector.base import DTYPE, as_columns
from . import _pdhg_kernels as _pk
from ._pdhg_tv import TVTerm
from .functionals import (
    Functional,
    GroupL21,
    KullbackLeibler,
    RowScaled,
    Separable,
    Term,
    WeightedL2,
    _compiled_ok,
)
from .result import IterState, SolverResult, check_iterations

# the functionals live in .functionals; re-exported here, where the solvers have always taken them
__all__ = ["Functional", "GroupL21", "KullbackLeibler", "PDState", "RowScaled", "Separable", "Term", "WeightedL2",
           "pdhg"]

_TINY = 1e-30


def _into(ufunc, a: np.ndarray, b: np.ndarray, buf: np.ndarray | None) -> np.ndarray:
    """``ufunc(a, b)``, written into ``buf`` when it has the result's shape and dtype (the same bits)."""
    if buf is not None and buf.dtype == np.result_type(a, b) and buf.shape == np.broadcast_shapes(a.shape, b.shape):
        return ufunc(a, b, out=buf)
    return ufunc(a, b)


def _dual_start(terms: list[Term], y0, m: int) -> list[np.ndarray]:
    """The dual variables at the start: ``y0``'s arrays (copied, float32) or zeros, one per term."""
    if y0 is None:
        y0 = [None] * len(terms)
    if len(y0) != len(terms):
        raise ValueError(f"y0 must hold one dual per term ({len(terms)}), got {len(y0)}")
    out = []
    for t, y in zip(terms, y0, strict=True):
        shape = (t.op.shape[0], m)
        if y is None:
            out.append(np.zeros(shape, DTYPE))
            continue
        y = np.asarray(y)
        if y.shape != shape:
            raise ValueError(f"y0 for term {t.name or type(t.op).__name__} must be {shape}, got {y.shape}")
        if not np.all(np.isfinite(y)):
            raise ValueError(f"y0 for term {t.name or type(t.op).__name__} holds non-finite values")
        out.append(np.array(y, DTYPE, order="C"))
    return out


@dataclass
class PDState(IterState):
    """What a callback sees after each PDHG iteration.

    ``residual_norm`` is NaN (a PDHG problem has no single data residual; see
    ``objective``); ``objective`` is the primal objective per column at the last
    monitored iteration; ``primal_residual`` and ``dual_residual`` the preconditioned
    norms of ``r_p`` and ``r_d`` (see the module docstring) at this iteration.
    """

    objective: np.ndarray = field(default_factory=lambda: np.zeros(0))
    primal_residual: np.ndarray = field(default_factory=lambda: np.zeros(0))
    dual_residual: np.ndarray = field(default_factory=lambda: np.zeros(0))


class _Balance:
    """Residual balancing of the step balance, one ``theta`` per column (Goldstein et al. 2015).

    The residuals are compared in the norms of the steps at ``theta_unit`` (independent of
    the current ``theta``): a primal residual ``Delta`` times the dual one raises ``theta`` by
    ``1 / (1 - alpha)``, the reverse lowers it by ``1 - alpha``; every change multiplies
    that column's ``alpha`` by ``eta`` so that the adaptation dies out and the iteration
    ends as a fixed-step PDHG (which converges for every ``theta``).
    """

    def __init__(self, theta: float, unit: float, m: int, alpha: float = 0.5, eta: float = 0.95,
                 delta: float = 1.5):
        self.theta = np.full(m, float(theta))
        self.unit = float(unit)
        self.alpha = np.full(m, float(alpha))
        self.eta, self.delta = float(eta), float(delta)

    def steps(self, tau0, sig0):
        """``T``, ``S_t`` and their reciprocals at the current ``theta`` (per column)."""
        th = self.theta.astype(DTYPE)[None, :]
        tau = tau0 * th
        sig = [s0 / th for s0 in sig0]
        tau_inv = np.where(tau > 0, 1 / np.where(tau > 0, tau, 1), 0).astype(DTYPE)
        sig_inv = [np.where(s > 0, 1 / np.where(s > 0, s, 1), 0).astype(DTYPE) for s in sig]
        return tau, sig, tau_inv, sig_inv

    def update(self, p_res, d_res) -> bool:
        """Move ``theta`` from the residuals ``||r_p||_T``, ``||r_d||_S`` (per column); whether any moved."""
        rel = self.theta / self.unit
        p = np.asarray(p_res) / np.sqrt(rel)  # ||r_p|| in the norm of T at theta_unit
        d = np.asarray(d_res) * np.sqrt(rel)
        up = p > self.delta * d
        down = p * self.delta < d
        f = np.where(up, 1 / (1 - self.alpha), np.where(down, 1 - self.alpha, 1.0))
        moved = up | down
        self.theta = self.theta * f
        self.alpha = np.where(moved, self.alpha * self.eta, self.alpha)
        return bool(np.any(moved))


def pdhg(
    terms: list[Term],
    n_iter: int,
    *,
    x0: np.ndarray | None = None,
    y0: list[np.ndarray | None] | None = None,
    n_cols: int | None = None,
    nonneg: bool = True,
    theta: float = 1.0,
    adaptive: bool = False,
    theta_unit: float = 1.0,
    adapt_every: int = 20,
    compiled: bool = True,
    fuse_tv: bool = True,
    tol: float = 0.0,
    min_iter: int = 20,
    window: int = 10,
    snapshots: Iterable[int] = (),
    callback: Callable[[PDState], bool | None] | None = None,
    monitor_every: int = 1,
    callback_every: int = 1,
) -> SolverResult:
    """Minimise ``sum_t F_t(K_t x)`` over ``x >= 0`` for every column at once.

    Parameters
    ----------
    terms : list of Term
        All operators share ``n_in``; every functional acts on ``(n_out_t, m)``.
    n_iter : int
        Maximum iterations.
    x0 : ndarray (n_in, m), optional
        Start (default zeros; ``n_cols`` then gives ``m``, default 1).
    y0 : list of ndarray or None, optional
        Dual start, one ``(n_out_t, m)`` array (or None: zeros) per term, e.g. the
        ``info["dual"]`` of an earlier solve of a nearby problem (a warm start: with
        ``x0`` from the same solve, the iteration resumes near its saddle point instead
        of at the primal point with zero duals). Default: all zeros.
    nonneg : bool
        Constrain ``x >= 0`` (else unconstrained).
    theta : float
        Primal / dual step balance (> 0): ``T = theta T_0``, ``S = S_0 / theta``.
    adaptive : bool
        Residual balancing of ``theta`` per column (Goldstein, Li, Yuan, Esser & Baraniuk
        2015, "Adaptive primal-dual splitting methods"): every ``adapt_every`` iterations the
        primal and dual residuals (in the norms of the steps at ``theta_unit``) are compared
        and ``theta`` moved towards the smaller one by a factor that shrinks at every move.
        ``theta`` is then the start. The minimiser is the same; the iterates are not.
    theta_unit : float
        The ``theta`` at which the residuals' norms are taken (the scale that makes the
        primal and dual residuals comparable; fused-TV passes its typical unknown).
    adapt_every : int
        Iterations between two adaptations (the residuals are computed then).
    compiled : bool
        Use the compiled element-wise passes (:mod:`._pdhg_kernels`) where the arrays and
        functionals allow; False: the numpy expressions. The same iterates bit for bit.
    fuse_tv : bool
        With ``compiled``: when the last term is TV (``Scaled(Gradient2D, c)`` with
        :class:`GroupL21`), run it from the primal iterates, without its gradient fields
        (:class:`~._pdhg_tv.TVTerm`: two passes instead of six per iteration). The same iterates bit for bit.
    tol, min_iter, window :
        The stopping rule (``tol = 0``: run ``n_iter`` iterations).
    snapshots : iterable of int
        Iterations after which to keep a copy of ``x``.
    callback : callable, optional
        Called with a :class:`PDState` after every iteration; returning True stops.
    monitor_every : int
        Evaluate the objective (and store the history, test the stopping rule)
        every this many iterations.
    callback_every : int
        Call ``callback`` every this many iterations (and after the last); the
        residuals it sees are computed only then. No effect on the iterates.

    Returns
    -------
    SolverResult
        ``info`` holds ``objective`` (n_hist, m), ``primal_residual``, ``dual_residual``,
        ``iterations`` (the iteration numbers of the history rows), ``converged`` and
        ``dual`` (the final dual variables, one ``(n_out_t, m)`` array per term: ``y0``
        of a warm-started solve).
    """
    n_iter = check_iterations(n_iter)
    if not terms:
        raise ValueError("pdhg needs at least one term")
    n_in = {t.op.shape[1] for t in terms}
    if len(n_in) != 1:
        raise ValueError(f"all terms must share n_in, got {[t.op.shape for t in terms]}")
    n_in = n_in.pop()
    if not (np.isfinite(theta) and theta > 0):
        raise ValueError(f"theta must be a positive number, got {theta}")
    if isinstance(adapt_every, bool) or int(adapt_every) < 1:
        raise ValueError(f"adapt_every must be a positive integer, got {adapt_every!r}")
    adapt_every = int(adapt_every)
    if adaptive and not (np.isfinite(theta_unit) and theta_unit > 0):
        raise ValueError(f"theta_unit must be a positive number, got {theta_unit}")
    if isinstance(callback_every, bool) or int(callback_every) < 1:
        raise ValueError(f"callback_every must be a positive integer, got {callback_every!r}")
    callback_every = int(callback_every)
    if x0 is None:
        x = np.zeros((n_in, int(n_cols or 1)), DTYPE)
    else:
        x = as_columns(x0, n_in, "x0")[0].copy()
    m = x.shape[1]
    wanted = {int(s) for s in snapshots}
    bad = [s for s in wanted if not 1 <= s <= n_iter]
    if bad:
        raise ValueError(f"snapshots must lie in [1, n_iter={n_iter}], got {sorted(bad)}")

    # diagonal preconditioners (Pock & Chambolle 2011, alpha = 1), balanced by theta
    col = np.zeros((n_in, m), DTYPE)
    sig0 = []
    for t in terms:
        mask = t.f.row_mask(t.op.shape[0], m)
        col += t.op.abs_col_sums(mask)
        rs = t.op.abs_row_sums().astype(np.float64)
        sig0.append(np.where(rs > 0, 1.0 / np.where(rs > 0, rs, 1.0), 0.0).astype(DTYPE))
    tau0 = np.where(col > 0, 1.0 / np.where(col > 0, col, 1), 0).astype(DTYPE)
    if adaptive:
        bal = _Balance(theta, theta_unit, m)
        tau, sig, tau_inv, sig_inv = bal.steps(tau0, sig0)
    else:
        bal = None
        tau = tau0 * DTYPE(theta)
        sig = [s0 / DTYPE(theta) for s0 in sig0]
        # reciprocals of the steps for the residual norms (0 where a step is 0), once
        tau_inv = np.where(tau > 0, 1 / np.where(tau > 0, tau, 1), 0).astype(DTYPE)
        sig_inv = [np.where(s > 0, 1 / np.where(s > 0, s, 1), 0).astype(DTYPE) for s in sig]

    # the TV term run from the primal iterates (no K x, K xbar of its own): iv its index, else None
    tvt = TVTerm(terms[-1]) if compiled and fuse_tv and TVTerm.applies(terms) else None
    iv = len(terms) - 1 if tvt is not None else None
    Kx = [t.op._forward(x) for t in terms]
    Kxbar = [k.copy() if i != iv else None for i, k in enumerate(Kx)]
    # the previous iterate (the TV term's K xbar = 2 c D x - c D x_prev; None: the first iteration)
    x_prev: np.ndarray | None = None
    prev_handed = False
    tv_buf: np.ndarray | None = None
    y = _dual_start(terms, y0, m)
    obj = sum(t.f.value(k) for t, k in zip(terms, Kx, strict=True))
    hist_obj, hist_p, hist_d, hist_it, hist_theta = [], [], [], [], []
    snaps: dict[int, np.ndarray] = {}
    recent = [obj]
    converged = False
    done = 0
    stop = "n_iter"
    p_res = d_res = np.full(m, np.nan)
    # the adjoints' temporaries, kept from one iteration to the next (operators that can write
    # into a buffer skip a page-faulting allocation; the same bits either way)
    adj_buf: list[np.ndarray | None] = [None] * len(terms)
    # the previous iteration's x once replaced: K^T y is written into it (never one a callback was given)
    spare: np.ndarray | None = None
    x_handed = False
    # a measured iteration's arrays, kept for the next one: the dual step's output (the K xbar it
    # could not overwrite), y - y_new per term, x - x_new and its product with T^-1
    meas_out: list[np.ndarray | None] = [None] * len(terms)
    dy_buf: list[np.ndarray | None] = [None] * len(terms)
    dx_buf: list[np.ndarray | None] = [None, None]
    for it in range(1, n_iter + 1):
        monitor = it % monitor_every == 0 or it == n_iter
        call = callback is not None and (it % callback_every == 0 or it == n_iter)
        # the residuals cost as much as a prox: computed when monitored or watched only
        adapt = bal is not None and it % adapt_every == 0
        measure = monitor or call or adapt
        dys = []
        dead = [None] * len(terms)
        if tvt is not None and measure:
            # the residuals need K xbar: formed as the generic loop holds it
            Kxbar[iv] = tvt.kxbar(x, x_prev, tv_buf)
        for i, t in enumerate(terms):
            if i == iv and not measure:
                y_new = tvt.dual_step(y[i], x, x_prev, sig[i])
                if y_new is not None:
                    continue
                Kxbar[iv] = tvt.kxbar(x, x_prev, tv_buf)
            # K xbar is needed again by the residual when measured; otherwise its buffer is reused
            if compiled:
                y_new = t.f.dual_step(y[i], Kxbar[i], sig[i], out=meas_out[i] if measure else Kxbar[i])
                meas_out[i] = None
            else:
                p = sig[i] * Kxbar[i] if measure else np.multiply(Kxbar[i], sig[i], out=Kxbar[i])
                p += y[i]
                y_new = t.f.prox_conj(p, sig[i])
            if measure:
                dy_buf[i] = _into(np.subtract, y[i], y_new, dy_buf[i])
                dys.append(dy_buf[i])
            if y_new is not y[i]:
                dead[i] = y[i]  # the old dual is no longer used: K_i x_new may be written into it
            y[i] = y_new
        KTy = terms[0].op._adjoint_into(y[0], spare)
        spare = None
        for i in range(1, len(terms) - 1 if compiled else len(terms)):
            adj_buf[i] = terms[i].op._adjoint_into(y[i], adj_buf[i])
            KTy += adj_buf[i]
        if tvt is not None and tvt.primal_step(x, KTy, y[iv], tau, nonneg):
            x_new = KTy  # max(0, x - T (KTy + c D^T y_tv)) in one pass, into KTy's buffer
        elif compiled and _compiled_ok(KTy, x, tau):
            # max(0, x - T (KTy + K_last^T y_last)) in one pass, into KTy's buffer
            if len(terms) > 1:
                i = len(terms) - 1
                adj_buf[i] = terms[i].op._adjoint_into(y[i], adj_buf[i])
                _pk.primal_step2(x, KTy, adj_buf[i], tau, nonneg, KTy)
            else:
                _pk.primal_step(x, KTy, tau, nonneg, KTy)
            x_new = KTy
        else:
            if compiled and len(terms) > 1:
                i = len(terms) - 1
                adj_buf[i] = terms[i].op._adjoint_into(y[i], adj_buf[i])
                KTy += adj_buf[i]
            KTy *= tau
            x_new = np.subtract(x, KTy, out=KTy)
            if nonneg:
                np.maximum(x_new, 0, out=x_new)
        # the TV term's K x_new only where the residuals or the objective read it
        Kx_new = [t.op._forward_into(x_new, dead[i]) if i != iv or measure else None for i, t in enumerate(terms)]
        del dead
        dx = None
        if measure or tol > 0:
            dx = dx_buf[0] = _into(np.subtract, x, x_new, dx_buf[0])
        if measure:
            # residuals in the preconditioned norms: ||r_p||_T^2 = sum dx^2 / T,
            # ||r_d||_S^2 = sum S (S^-1 dy + K (xbar - x_new))^2
            dx_buf[1] = _into(np.multiply, dx, tau_inv, dx_buf[1])
            p_res = np.sqrt(np.einsum("ij,ij->j", dx, dx_buf[1], dtype=np.float64))
            d2 = np.zeros(m)
            for i in range(len(terms)):
                e = _into(np.multiply, dys[i], sig_inv[i], dys[i])  # y - y_new is not needed again
                e += Kxbar[i]
                e -= Kx_new[i]
                # K xbar is not needed again either: e S there, and kept for the next measured dual step
                free = Kxbar[i] if all(Kxbar[i] is not a for a in (y[i], Kx_new[i], e)) else None
                es = _into(np.multiply, e, sig[i], free)
                d2 += np.einsum("ij,ij->j", es, e, dtype=np.float64)
                meas_out[i] = es if es is free else None
            d_res = np.sqrt(d2)
        # K xbar = K (2 x_new - x) = 2 K x_new - K x, written over the old K x (no allocation)
        for i, (kn, ko) in enumerate(zip(Kx_new, Kx, strict=True)):
            if i == iv:
                # K xbar is formed from x and x_prev; a measured iteration's arrays serve the next one's
                tv_buf = next((a for a in (Kxbar[iv], ko) if a is not None and a is not y[iv] and a is not kn
                               and a is not meas_out[iv]), None)
                Kxbar[iv] = None
                continue
            if compiled and _compiled_ok(kn, ko):
                _pk.extrapolate(ko, kn)
            else:
                ko -= kn
                ko -= kn
                np.negative(ko, out=ko)
        Kxbar = Kx
        Kx = Kx_new
        if tvt is None:
            if not x_handed:
                spare = x
        else:
            # x becomes the previous iterate; the one before it is free (unless a callback holds it)
            if x_prev is not None and not prev_handed:
                spare = x_prev
            x_prev, prev_handed = x, x_handed
        x_handed = call
        x = x_new
        if adapt and bal.update(p_res, d_res):
            tau, sig, tau_inv, sig_inv = bal.steps(tau0, sig0)
        if monitor:
            obj = sum(t.f.value(k) for t, k in zip(terms, Kx, strict=True))
            hist_obj.append(obj)
            hist_p.append(p_res)
            hist_d.append(d_res)
            hist_it.append(it)
            if bal is not None:
                hist_theta.append(bal.theta.copy())
            recent.append(obj)
            if len(recent) > window + 1:
                recent.pop(0)
        done = it
        if it in wanted:
            snaps[it] = x.copy()
        if call and callback(PDState(it, x, np.full(m, np.nan), obj, p_res, d_res)):
            stop = "callback"
            break
        if tol > 0 and monitor and it >= min_iter and len(recent) == window + 1:
            rel_obj = np.abs(recent[0] - recent[-1]) / np.maximum(np.abs(recent[-1]), _TINY)
            rel_dx = np.sqrt(np.einsum("ij,ij->j", dx, dx, dtype=np.float64)) / np.maximum(
                np.sqrt(np.einsum("ij,ij->j", x, x, dtype=np.float64)), _TINY)
            if np.all(rel_obj < tol) and np.all(rel_dx < tol):
                converged = True
                stop = "tol"
                break
    objective = np.array(hist_obj)
    return SolverResult(
        x=x, n_iter=done, snapshots=snaps, residual_norms=np.zeros((0, m)), objective=objective,
        converged=converged, stop_reason=stop,
        info={"method": "pdhg", "theta": theta, "objective": objective,
              "primal_residual": np.array(hist_p), "dual_residual": np.array(hist_d),
              "iterations": np.array(hist_it), "converged": converged, "dual": y,
              **({"theta_history": np.array(hist_theta)} if bal is not None else {})},
    )
