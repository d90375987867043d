"""The functionals of :func:`~chemtomo.reconstruct.pdhg.pdhg`'s terms: their values and dual steps.

Each term of the objective is ``F(K x)``: a linear operator of the contract and a convex
``F`` whose conjugate has a cheap proximal map. Here are the ``F`` the solvers use:
weighted least squares (Gaussian noise), the Poisson negative log-likelihood
(Kullback-Leibler), the (group) l2,1 norm of a gradient (total variation), row
scaling (whitening) and row blocks of different functionals on one operator's output.
Each has a ``value`` per column and ``prox_conj``, and the dual step
``prox_{S F*}(y + S K xbar)`` (:meth:`Functional.dual_step`), which the commonest of them
run as compiled kernels (:mod:`._pdhg_kernels`) in the numpy expressions' float32
operations and order. :class:`Term` pairs an operator with its functional.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..projector.base import DTYPE, Operator
from . import _pdhg_kernels as _pk
from .tv import group_norm_sum, project_l2_balls


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
