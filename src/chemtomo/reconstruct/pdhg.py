"""Preconditioned primal-dual hybrid gradient (Chambolle-Pock) with non-negativity.

Solves, for every column of the unknown at once,

    min_{x >= 0}  sum_t F_t(K_t x)

where each term is a linear operator ``K_t`` (the operator contract) and a convex
function ``F_t`` whose conjugate has a cheap proximal map: weighted least squares,
the Poisson negative log-likelihood (Kullback-Leibler) and the (group) l2,1 norm of
a gradient (total variation). The iteration (Chambolle & Pock 2011, with the
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
the same iterates bit for bit (``compiled=False`` runs the numpy expressions).

Stopping rule (``tol > 0``): after ``min_iter`` iterations, stop when, for every
column, the relative objective change over the last ``window`` monitored
iterations and the relative primal change ``||x_new - x|| / ||x_new||`` are both
below ``tol``; otherwise the iteration budget ``n_iter`` is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from ..projector.base import DTYPE, Operator, as_columns
from . import _pdhg_kernels as _pk
from .result import IterState, SolverResult, check_iterations
from .tv import group_norm_sum, project_l2_balls

_TINY = 1e-30


# ----------------------------------------------------------------------------- functionals

class Functional:
    """A convex ``F(y)`` on ``(n, m)`` columns: its value per column and ``prox`` of its conjugate.

    ``mask`` (broadcastable to ``(n, m)``, values 0 or 1) removes rows from the term:
    a masked row contributes nothing (its dual variable stays 0). Used for held-out
    rays in cross-validation.
    """

    mask: np.ndarray | None = None

    def value(self, y: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """``F`` of every column of ``y`` ``(n, m)``, shape ``(m,)``."""
        raise NotImplementedError

    def prox_conj(self, p: np.ndarray, sigma: np.ndarray) -> np.ndarray:  # pragma: no cover
        """``prox_{sigma F*}(p)``, the proximal map of the convex conjugate with step ``sigma``.

        Parameters
        ----------
        p : ndarray, (n, m)
            Dual point.
        sigma : ndarray or float
            Dual step sizes, broadcastable to ``p``.

        Returns
        -------
        ndarray, (n, m)
        """
        raise NotImplementedError

    def row_mask(self, n: int, m: int) -> np.ndarray | None:
        """The term's ``mask`` as 0/1 row weights of shape ``(n, m)``, or None when every row is used."""
        return None if self.mask is None else np.broadcast_to(np.asarray(self.mask, DTYPE), (n, m))

    def dual_step(self, y: np.ndarray, kxbar: np.ndarray, sigma: np.ndarray, out: np.ndarray | None = None):
        """PDHG's dual step ``prox_{sigma F*}(y + sigma kxbar)``.

        Parameters
        ----------
        y : ndarray, (n, m)
            Current dual variable (not modified).
        kxbar : ndarray, (n, m)
            ``K xbar``.
        sigma : ndarray
            Dual steps, ``(n, 1)`` or ``(n, m)``.
        out : ndarray, optional
            A buffer the step may overwrite and return (``kxbar`` itself when the caller
            no longer needs it); None: ``kxbar`` is left alone.

        Returns
        -------
        ndarray, (n, m)
            The new dual variable (``out``, or a new array).
        """
        p = sigma * kxbar if out is None else np.multiply(kxbar, sigma, out=out)
        p += y
        return self.prox_conj(p, sigma)


def _compiled_ok(*arrays) -> bool:
    """Whether the arrays (None skipped) suit the compiled passes: float32, 2-D, C-contiguous."""
    return all(a is None or (isinstance(a, np.ndarray) and a.dtype == DTYPE and a.ndim == 2
                             and a.flags.c_contiguous) for a in arrays)


def _as_block(a, name: str) -> np.ndarray:
    a = np.asarray(a, DTYPE)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be (n,) or (n, m), got shape {a.shape}")
    return a


@dataclass
class WeightedL2(Functional):
    """``F(y) = 1/2 sum_i w_i (y_i - b_i)^2``: Gaussian noise of variance ``1 / w_i``.

    Parameters
    ----------
    b : ndarray (n,) or (n, m)
    weight : ndarray broadcastable to b, or float
        Inverse noise variances (0 removes a row).
    """

    b: np.ndarray
    weight: np.ndarray | float = 1.0
    mask: np.ndarray | None = None

    def __post_init__(self):
        self.b = _as_block(self.b, "b")
        w = np.asarray(self.weight, DTYPE)
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise ValueError("least-squares weights (inverse variances) must be finite and >= 0")
        if self.mask is not None:
            w = w * np.asarray(self.mask, DTYPE)
        self.w = w if w.ndim != 1 else w[:, None]

    def value(self, y):
        """``1/2 sum_i w_i (y_i - b_i)^2`` per column, float64 ``(m,)``."""
        d = (y - self.b).astype(np.float64)
        return 0.5 * np.sum(np.broadcast_to(self.w, d.shape) * d * d, axis=0)

    def prox_conj(self, p, sigma):
        """``w (p - sigma b) / (w + sigma)``, the closed-form prox of ``sigma F*``."""
        # F*(q) = sum q^2 / (2 w) + <q, b>;  prox = w (p - sigma b) / (w + sigma)
        return self.w * (p - sigma * self.b) / (self.w + sigma)


@dataclass
class KullbackLeibler(Functional):
    """Poisson negative log-likelihood of counts ``b`` with mean ``y + background``.

    ``F(y) = sum_i (y_i + g_i) - b_i - b_i log((y_i + g_i) / b_i)`` (the KL divergence;
    0 at ``y + g = b``, +inf for ``y + g <= 0`` where ``b > 0``). Twice this is the
    Poisson deviance, whose expectation under the true mean is close to one per
    ray with more than a few counts (the discrepancy principle in
    :mod:`chemtomo.reconstruct.autoparam`).

    Parameters
    ----------
    b : ndarray (n,) or (n, m)
        Counts (>= 0; need not be integers, e.g. after a gain correction).
    background : float or ndarray
        Known additive mean ``g`` (>= 0).
    """

    b: np.ndarray
    background: np.ndarray | float = 0.0
    mask: np.ndarray | None = None

    def __post_init__(self):
        self.b = _as_block(self.b, "counts")
        if np.any(self.b < 0) or not np.all(np.isfinite(self.b)):
            raise ValueError("Poisson counts must be finite and >= 0")
        self.g = np.asarray(self.background, DTYPE)
        if np.any(self.g < 0):
            raise ValueError("the Poisson background must be >= 0")
        self.m = None if self.mask is None else np.asarray(self.mask, DTYPE)
        if self.m is not None and self.m.ndim == 1:
            self.m = self.m[:, None]

    def value(self, y):
        """The KL divergence per column, float64 ``(m,)`` (``y + g`` floored at 1e-12; masked rows left out)."""
        mu = np.maximum(y.astype(np.float64) + self.g, 1e-12)
        b = np.broadcast_to(self.b, mu.shape).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            v = mu - b + np.where(b > 0, b * np.log(np.where(b > 0, b, 1.0) / mu), 0.0)
        if self.m is not None:
            v = v * self.m
        return np.sum(v, axis=0)

    def prox_conj(self, p, sigma):
        """``prox_{sigma F*}(p)`` in closed form (0 on masked rows)."""
        # F(y) = G(y + g): prox_{s F*}(p) = prox_{s G*}(p + s g);
        # G*(q) = -sum b log(1 - q):  prox = (q + 1 - sqrt((q - 1)^2 + 4 s b)) / 2
        q = p + sigma * self.g if np.any(self.g) else p
        out = 0.5 * (q + 1 - np.sqrt((q - 1) ** 2 + 4 * sigma * self.b))
        if self.m is not None:
            out *= self.m
        return out


@dataclass
class GroupL21(Functional):
    """``F(g) = sum_px lam * ||g_px||_2`` on gradient fields of :class:`Gradient2D` (TV).

    Parameters
    ----------
    lam : float or ndarray (m,)
        Weight per column (>= 0).
    n_channels : int
    image_shape : (ny, nx)
    coupled : bool
        Group over channels too (vectorial TV).
    """

    lam: np.ndarray | float
    n_channels: int
    image_shape: tuple[int, int]
    coupled: bool = False

    def __post_init__(self):
        lam = np.asarray(self.lam, np.float64)
        if np.any(lam < 0) or not np.all(np.isfinite(lam)):
            raise ValueError(f"the TV weight lambda must be finite and >= 0, got {self.lam}")
        self.lam = lam

    def value(self, g):
        """``lam * sum_px ||g_px||_2`` per column, shape ``(m,)``."""
        nrm = group_norm_sum(g, self.n_channels, self.image_shape, self.coupled)
        return np.broadcast_to(self.lam, (g.shape[1],)) * nrm

    def prox_conj(self, p, sigma):
        """``p`` projected in place onto the l2 balls of radius ``lam`` (``sigma`` does not enter)."""
        return project_l2_balls(p, self.lam, self.n_channels, self.image_shape, self.coupled)

    def dual_step(self, y, kxbar, sigma, out=None):
        """``y + sigma kxbar`` projected onto the balls in one compiled pass (see :meth:`Functional.dual_step`)."""
        if not _compiled_ok(y, kxbar, sigma, out):
            return Functional.dual_step(self, y, kxbar, sigma, out)
        p = np.empty_like(kxbar) if out is None else out
        ny, nx = self.image_shape
        k, m = self.n_channels, kxbar.shape[1]
        r = np.ascontiguousarray(np.broadcast_to(np.asarray(self.lam, DTYPE), (m,)))
        f5 = lambda a: a.reshape(k, 2, ny, nx, a.shape[1])  # noqa: E731
        _pk.dual_tv(f5(kxbar), f5(sigma), f5(y), r, bool(self.coupled), f5(p))
        return p


@dataclass
class RowScaled(Functional):
    """``F_d(y) = F(y / d)`` for positive row scales ``d``: the term ``F(K x)`` written as ``F_d((d K) x)``.

    Rescaling the rows of an operator leaves the problem unchanged but changes the
    diagonal preconditioners (they see ``|d K|``), hence the speed of PDHG. Whitening
    (``d = 1 / noise std``) puts all data blocks on the same footing.
    ``prox_{s F_d^*}(p) = prox_{s d^2 F^*}(d p) / d``.
    """

    f: Functional
    d: np.ndarray

    def __post_init__(self):
        d = np.asarray(self.d, DTYPE)
        if d.ndim == 1:
            d = d[:, None]
        if np.any(d <= 0) or not np.all(np.isfinite(d)):
            raise ValueError("row scales must be positive and finite")
        self.d = d
        self.mask = getattr(self.f, "mask", None)

    def value(self, y):
        """``F(y / d)`` per column."""
        return self.f.value(y / self.d)

    def prox_conj(self, p, sigma):
        """``prox_{sigma d^2 F*}(d p) / d``."""
        return self.f.prox_conj(self.d * p, sigma * self.d * self.d) / self.d

    def row_mask(self, n, m):
        """The wrapped functional's row mask."""
        return self.f.row_mask(n, m)

    def _kernel_args(self, n: int, m: int):
        """``(d, b, w, mask, n_kl)`` as ``(n, m)`` float32 arrays for :func:`._pdhg_kernels.dual_data`, or None.

        Only for a KL without background, a weighted L2, or a :class:`Separable` of one KL
        block followed by one weighted-L2 block (the fused model); cached per ``(n, m)``.
        """
        cache = getattr(self, "_kargs", None)
        if cache is not None and cache[0] == (n, m):
            return cache[1]
        f = self.f
        parts = f.parts if isinstance(f, Separable) else [(n, f)]
        kl = [p for p in parts if isinstance(p[1], KullbackLeibler)]
        l2 = [p for p in parts if isinstance(p[1], WeightedL2)]
        ok = (len(kl) + len(l2) == len(parts) and len(kl) <= 1 and len(l2) <= 1
              and (not kl or parts[0][1] is kl[0][1]) and all(not np.any(p[1].g) for p in kl))
        args = None
        if ok and self.d.shape[0] == n:
            full = lambda a, k: np.ascontiguousarray(np.broadcast_to(np.asarray(a, DTYPE), (k, m)))  # noqa: E731
            n_kl = kl[0][0] if kl else 0
            b = [full(fn.b, k) for k, fn in parts]
            w = [full(1.0, k) if isinstance(fn, KullbackLeibler) else full(fn.w, k) for k, fn in parts]
            mk = [full(1.0 if fn.m is None else fn.m, k) if isinstance(fn, KullbackLeibler) else full(1.0, k)
                  for k, fn in parts]
            args = (full(self.d, n), np.concatenate(b), np.concatenate(w), np.concatenate(mk), int(n_kl))
        self._kargs = ((n, m), args)
        return args

    def dual_step(self, y, kxbar, sigma, out=None):
        """The dual step in one compiled pass when the wrapped functional allows it (see :meth:`_kernel_args`).

        The same float32 operations in the same order as :meth:`Functional.dual_step` with
        :meth:`prox_conj` (bit for bit); otherwise that generic step.
        """
        args = self._kernel_args(*kxbar.shape) if _compiled_ok(y, kxbar, sigma, out) else None
        if args is None:
            return Functional.dual_step(self, y, kxbar, sigma, out)
        res = np.empty_like(kxbar) if out is None else out
        _pk.dual_data(kxbar, sigma, y, *args, res)
        return res


@dataclass
class Separable(Functional):
    """Different functionals on consecutive row blocks of one operator's output.

    ``parts`` is a list of ``(n_rows, Functional)``; the row counts must add up to
    the operator's ``n_out``. Lets one :class:`~chemtomo.projector.compose.ChannelMix`
    pass serve Poisson EDS rows and a least-squares HAADF row block.
    """

    parts: list

    def __post_init__(self):
        self._splits = np.cumsum([n for n, _ in self.parts])[:-1]

    def _split(self, y):
        return np.split(y, self._splits, axis=0)

    def value(self, y):
        """The parts' values on their row blocks, summed per column."""
        return sum(f.value(part) for (_, f), part in zip(self.parts, self._split(y), strict=True))

    def prox_conj(self, p, sigma):
        """Each part's ``prox_conj`` on its row block (``sigma`` split alike when given per row), stacked."""
        sig = self._split(sigma) if np.ndim(sigma) and np.shape(sigma)[0] == p.shape[0] else [sigma] * len(self.parts)
        return np.concatenate([f.prox_conj(part, s)
                               for (_, f), part, s in zip(self.parts, self._split(p), sig, strict=True)])

    def row_mask(self, n, m):
        """The parts' row masks stacked (ones for a part without one), or None when no part has one."""
        masks = [f.row_mask(k, m) for k, f in self.parts]
        if all(mk is None for mk in masks):
            return None
        return np.concatenate([np.ones((k, m), DTYPE) if mk is None else mk
                               for (k, _), mk in zip(self.parts, masks, strict=True)])


@dataclass
class Term:
    """One block ``F(K x)`` of the objective."""

    op: Operator
    f: Functional
    name: str = ""


# ----------------------------------------------------------------------------- solver

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

    Kx = [t.op._forward(x) for t in terms]
    Kxbar = [k.copy() for k in Kx]
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
    for it in range(1, n_iter + 1):
        monitor = it % monitor_every == 0 or it == n_iter
        call = callback is not None and (it % callback_every == 0 or it == n_iter)
        # the residuals cost as much as a prox: computed when monitored or watched only
        adapt = bal is not None and it % adapt_every == 0
        measure = monitor or call or adapt
        dys = []
        dead = [None] * len(terms)
        for i, t in enumerate(terms):
            # K xbar is needed again by the residual when measured; otherwise its buffer is reused
            if compiled:
                y_new = t.f.dual_step(y[i], Kxbar[i], sig[i], out=None if measure else Kxbar[i])
            else:
                p = sig[i] * Kxbar[i] if measure else np.multiply(Kxbar[i], sig[i], out=Kxbar[i])
                p += y[i]
                y_new = t.f.prox_conj(p, sig[i])
            if measure:
                dys.append(y[i] - y_new)
            if y_new is not y[i]:
                dead[i] = y[i]  # the old dual is no longer used: K_i x_new may be written into it
            y[i] = y_new
        KTy = terms[0].op._adjoint(y[0])
        for i in range(1, len(terms) - 1 if compiled else len(terms)):
            adj_buf[i] = terms[i].op._adjoint_into(y[i], adj_buf[i])
            KTy += adj_buf[i]
        if compiled and _compiled_ok(KTy, x, tau):
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
        Kx_new = [t.op._forward_into(x_new, dead[i]) for i, t in enumerate(terms)]
        del dead
        dx = x - x_new if (measure or tol > 0) else None
        if measure:
            # residuals in the preconditioned norms: ||r_p||_T^2 = sum dx^2 / T,
            # ||r_d||_S^2 = sum S (S^-1 dy + K (xbar - x_new))^2
            p_res = np.sqrt(np.einsum("ij,ij->j", dx, dx * tau_inv, dtype=np.float64))
            d2 = np.zeros(m)
            for i in range(len(terms)):
                e = dys[i] * sig_inv[i]
                e += Kxbar[i]
                e -= Kx_new[i]
                d2 += np.einsum("ij,ij->j", e * sig[i], e, dtype=np.float64)
            d_res = np.sqrt(d2)
        # K xbar = K (2 x_new - x) = 2 K x_new - K x, written over the old K x (no allocation)
        for kn, ko in zip(Kx_new, Kx, strict=True):
            if compiled and _compiled_ok(kn, ko):
                _pk.extrapolate(ko, kn)
            else:
                ko -= kn
                ko -= kn
                np.negative(ko, out=ko)
        Kxbar = Kx
        Kx = Kx_new
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
