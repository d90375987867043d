"""Regularised reconstructions: least squares + TV, Poisson + TV, and the fused HAADF-EDS model.

Three convex models, solved by one preconditioned primal-dual solver
(:func:`chemtomo.reconstruct.pdhg.pdhg`) on every slice, channel and parameter
value at once (all as columns), with non-negativity:

``"ls"`` (``ls_tv``), unknowns ``X_A`` (EDS counts per unit path, factor "f")::

    min_{X >= 0}  sum_A 1/(2 s^2) ||W X_A - I_A||^2  +  lam TV(X)

``"poisson"`` (``poisson_tv``), same unknowns, the EDS counts' own likelihood::

    min_{X >= 0}  sum_A KL(I_A ; W X_A)  +  lam TV(X)

``"fused"`` (``fused_tv``), unknowns ``X^b_A = r_A X_A`` (HAADF units, factor "z", as HEBT)::

    min_{X^b >= 0}  sum_A KL(I_A ; W X^b_A / r_A)
                    + sum_i (I^H_i - sum_A (W X^b_A)_i)^2 / (2 s_H,i^2)  +  lam TV(X^b)

in the spirit of Schwartz et al. (2024): the HAADF term is HEBT's linear response
model (eq 15) with the fitted ``r_A``, the EDS terms are Poisson, and the balance
between them is not a free ``alpha`` but the noise levels: ``KL`` is the Poisson
negative log-likelihood (variance = mean), ``s^2`` the mean count (``"ls"``), and
``s_H^2 = g I^H + (eps * mean I^H)^2``: Poisson-like HAADF noise of gain ``g``
(0 by default: arbitrary detector units) plus the error of the linear HAADF model
(partial volume, discretisation, non-linearity), ``eps`` of the mean HAADF signal
(``haadf_model_error``, default 1 %: the paper's HAADF-EDS regression leaves
``1 - R^2 = 1.8 %`` of the variance unexplained).

TV is isotropic, coupled over channels by default (vectorial TV: shared edges);
``coupled=False`` gives each channel its own TV.

The TV weight is given dimensionless, ``mu``, and converted with the data's noise
level so that one ``mu`` means the same smoothing at every dose::

    lam = mu * wbar / (sqrt(bbar) * u)

``wbar``: mean ray length (row sum of ``W``); ``bbar``: mean EDS count per ray and
line; ``u = 1`` for ``X_A`` and the count-weighted mean ``r_A`` for ``X^b_A``. With
whitened data (residuals divided by their noise std) and the unknowns in units of
their typical value ``bbar / wbar``, ``mu`` weighs TV against a unit-variance misfit.

Solver details: data rows are whitened (divided by their noise std) and the TV
operator scaled to a fixed fraction (``tv_scale``) of the data operator's column
sums before the diagonal preconditioners are formed; the step balance ``theta``
is in units of the typical unknown. Start: 30 SIRT iterations (EDS-only models),
or the HAADF SIRT map split by the measured mean composition (fused). Neither
changes the minimiser, only the speed (measured in ``docs/solvers.md``).

The three models are the registered methods ``ls_tv``, ``poisson_tv`` and ``fused_tv``
(:mod:`chemtomo.reconstruct.methods`, which holds their parameters and defaults).

A HAADF at tilts of its own: the HAADF term projects with ``W.modality("haadf")``
(:mod:`chemtomo.projector.modality`), ``(W_H sum_A X^b_A)_i``, and its rays are its
own (``haadf_ray_mask`` holds them out in cross-validation). PDHG applies its
operators generically whatever the geometries, so the cost is one projection of
``W_E`` per channel plus one of ``W_H`` per iteration and direction: the HAADF's
rows cost in proportion to its tilts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..projector.base import DTYPE, Operator, Scaled
from ..projector.compose import ChannelMix, RowScale, VStack
from ..projector.modality import ChannelSum
from .functionals import GroupL21, KullbackLeibler, RowScaled, Separable, Term, WeightedL2
from .huber import HuberGroup, SliceGradient
from .pdhg import pdhg
from .result import SolverResult, check_iterations
from .sirt import sirt
from .tv import Gradient2D

Model = Literal["ls", "poisson", "fused"]
MODELS = ("ls", "poisson", "fused")
PRIORS = ("tv", "huber")
INIT_SIRT_ITERATIONS = 30
# primal-dual step balance per model; fused 2.0 against 0.35 measured on the phantom at 1x and 0.1x dose
# (docs/performance.md, "Fused-TV: step balance and buffer reuse": no single value wins at both doses)
DEFAULT_THETA = {"ls": 1.0, "poisson": 1.0, "fused": 2.0}
# residual balancing of theta (pdhg's adaptive): off; it beats theta 2.0 at doses 1 and 0.1 of the phantom but not
# at 0.01 (docs/performance.md, "Fused-TV: one solve faster")
DEFAULT_ADAPTIVE = {"ls": False, "poisson": False, "fused": False}


def _square_shape(n_vox: int) -> tuple[int, int]:
    n = int(round(np.sqrt(n_vox)))
    if n * n != n_vox:
        raise ValueError(f"cannot infer a square slice from {n_vox} pixels; pass image_shape")
    return n, n


def _mask_columns(ray_mask, n_rays: int, m: int) -> np.ndarray | None:
    if ray_mask is None:
        return None
    mk = np.asarray(ray_mask, DTYPE)
    if mk.ndim == 1:
        mk = mk[:, None]
    if mk.shape[0] != n_rays or mk.shape[1] not in (1, m):
        raise ValueError(f"ray_mask must be (n_rays,) or (n_rays, m) = ({n_rays}, {m}), got {mk.shape}")
    if np.any((mk != 0) & (mk != 1)):
        raise ValueError("ray_mask must hold 0 (held out) or 1 (used)")
    return np.ascontiguousarray(np.broadcast_to(mk, (n_rays, m)))


def noise_level(counts: np.ndarray, ray_mask: np.ndarray | None = None) -> float:
    """``bbar``: mean EDS count per used ray and line (the noise scale of ``mu``)."""
    c = np.asarray(counts, np.float64)
    if ray_mask is None:
        return float(c.mean())
    mk = np.broadcast_to(np.asarray(ray_mask, np.float64), c.shape[1:])
    return float((c * mk).sum() / max(mk.sum() * c.shape[0], 1.0))


@dataclass(frozen=True)
class TVConstants:
    """The data-derived constants of a regularised solve.

    Computed once from all the data a result should be consistent over (a whole
    volume, every fold of a cross-validation) and handed to every solve of its
    parts, so that a slice's map does not depend on which other slices shared its
    batch (:func:`tv_constants`). ``bbar``, ``unit`` and ``hbar`` enter the model
    (the conversion of ``mu`` to ``lam``, the least-squares variance, the HAADF
    noise floor); ``scale`` and ``tv_operator_scale`` only the step sizes.

    Attributes
    ----------
    bbar : float
        Mean EDS count per ray and line.
    unit : float
        Typical size of one unknown relative to ``X_A``: 1, or (fused) the
        count-weighted mean ``r_A``.
    hbar : float
        Mean positive HAADF signal (fused; 0 otherwise).
    scale : float
        Typical unknown (``bbar / wbar``, fused: HAADF per unit path length).
    tv_operator_scale : float
        ``c`` of the scaled gradient ``c D`` (``tv_scale`` times a quarter of the mean
        column sum of the whitened data operator).
    """

    bbar: float
    unit: float
    hbar: float
    scale: float
    tv_operator_scale: float

    def as_dict(self) -> dict:
        """The constants as a dict of floats."""
        return {k: float(v) for k, v in self.__dict__.items()}

    @classmethod
    def coerce(cls, c) -> TVConstants:
        """``c`` itself if it is TVConstants, else TVConstants built from a mapping of its fields."""
        return c if isinstance(c, cls) else cls(**{k: float(v) for k, v in dict(c).items()})


def _whitening(B: np.ndarray, model: Model, bbar: float) -> np.ndarray:
    """Row scales ``d`` (1 / noise std) of the EDS rows ``(k n_rays, m)``."""
    if model == "ls":
        return np.full((B.shape[0], 1), 1.0 / np.sqrt(bbar), DTYPE)
    return (1.0 / np.sqrt(np.maximum(B, 1.0))).astype(DTYPE)


def _haadf_variance(haadf: np.ndarray, hbar: float, model_error: float, gain: float) -> np.ndarray:
    return gain * np.maximum(haadf, 0) + (model_error * hbar) ** 2


def data_row_scales(counts: np.ndarray, model: Model, constants: TVConstants, haadf: np.ndarray | None = None,
                    haadf_model_error: float = 0.01, haadf_gain: float = 0.0) -> np.ndarray:
    """``d``: the data term's row scales (1 / noise std) that :func:`tv_solve` whitens its rows with.

    Parameters
    ----------
    counts : ndarray, (k, n_rays, m)
        The EDS counts of the solve.
    model : {"ls", "poisson", "fused"}
    constants : TVConstants
        The solve's constants (``bbar``, ``hbar``).
    haadf : ndarray, (n_rays_H, m) or (n_rays_H, 1), optional
        The HAADF data (model "fused").
    haadf_model_error, haadf_gain : float
        The HAADF noise model (model "fused"), as :func:`tv_solve`'s.

    Returns
    -------
    ndarray
        ``(k n_rays, 1)`` ("ls"), ``(k n_rays, m)`` ("poisson"), or the EDS rows' scales
        over the HAADF rows' ``(k n_rays + n_rays_H, m)`` ("fused"), float32.
    """
    k, n_rays, m = counts.shape
    dE = _whitening(np.ascontiguousarray(counts.reshape(k * n_rays, m)), model, constants.bbar)
    if model != "fused":
        return dE
    h = np.asarray(haadf, DTYPE)
    h = np.ascontiguousarray(np.broadcast_to(h.reshape(h.shape[0], -1), (h.shape[0], m)))
    varH = _haadf_variance(h, constants.hbar, haadf_model_error, haadf_gain)
    return np.vstack([np.broadcast_to(dE, (k * n_rays, m)), (1.0 / np.sqrt(varH)).astype(DTYPE)])


def _fused_ratios(r, k: int) -> np.ndarray:
    """``r`` as ``k`` float64 response ratios, refused unless each is finite and positive (the model divides)."""
    r = np.asarray(r, np.float64).ravel()
    if r.size != k or not np.all(np.isfinite(r) & (r > 0)):
        raise ValueError(
            f"the fused model needs {k} positive response ratios r_A (it divides each line's map by its own), got "
            f"{r.tolist()}: a line with r_A = 0 does not explain the HAADF (the fit's warning names it); give the "
            "ratios (response_ratios=), leave the line out, or use an EDS-only method (eds_sirt, ls_tv, poisson_tv)")
    return r


def _fused_operator(W: Operator, r: np.ndarray) -> Operator:
    """The fused model's data operator: EDS rows ``W_E X^b_A / r_A``, HAADF rows ``W_H sum_A X^b_A``."""
    r = _fused_ratios(r, np.size(r))
    k = r.size
    WE, WH = W.modality("eds"), W.modality("haadf")
    if WH is WE:
        return ChannelMix(W, np.vstack([np.diag(1.0 / r), np.ones((1, k))]))
    return VStack([ChannelMix(WE, np.diag(1.0 / r)), ChannelSum(WH, np.ones(k))])


def _haadf_mask(W: Operator, mask: np.ndarray | None, haadf_ray_mask, m: int) -> np.ndarray | None:
    """The HAADF rays' mask: the EDS's when one geometry serves both, else ``haadf_ray_mask`` (None: all used)."""
    WH = W.modality("haadf")
    if WH is W.modality("eds") and haadf_ray_mask is None:
        return mask
    return _mask_columns(haadf_ray_mask, WH.shape[0], m)


def tv_constants(
    W: Operator, counts: np.ndarray, model: Model, *, haadf: np.ndarray | None = None, r=None,
    ray_mask: np.ndarray | None = None, haadf_model_error: float = 0.01, haadf_gain: float = 0.0,
    tv_scale: float = 0.3, haadf_ray_mask: np.ndarray | None = None,
) -> TVConstants:
    """:class:`TVConstants` of the data ``counts`` ``(k, n_rays, m)`` (and ``haadf`` ``(n_rays_H, m)``).

    Every quantity is a mean over rays, lines and columns, so the constants of a
    whole volume can be computed chunk by chunk as weighted means, and are what
    :func:`tv_solve` computes from its own columns when none are given. The HAADF's
    rays are ``W.modality("haadf")``'s (``haadf_ray_mask`` as in :func:`tv_solve`).
    """
    counts = np.asarray(counts, DTYPE)
    k, n_rays, m = counts.shape
    mask = _mask_columns(ray_mask, n_rays, m)
    bbar = noise_level(counts, mask)
    if not bbar > 0:
        raise ValueError("the EDS data hold no counts: cannot set the noise level")
    wbar = float(np.mean(W.row_sums()))
    B = counts.reshape(k * n_rays, m)
    # mean column sum of |d K| = (|M| (x) W)^T (column mean of d): one adjoint, whatever m
    dbar = np.ascontiguousarray(_whitening(B, model, bbar).mean(axis=1, keepdims=True))
    if model == "fused":
        r = np.asarray(r, np.float64).ravel()
        WH = W.modality("haadf")
        haadf = np.asarray(haadf, DTYPE).reshape(WH.shape[0], -1)
        hpos = haadf[haadf > 0]
        hbar = float(hpos.mean()) if hpos.size else 1.0
        per_line = counts.astype(np.float64).sum(axis=(1, 2))
        unit = float(np.sum(r * per_line) / max(per_line.sum(), 1e-300))
        mask_h = _haadf_mask(W, mask, haadf_ray_mask, m)
        mk = np.ones((WH.shape[0], 1)) if mask_h is None else mask_h
        rows = WH.row_sums().astype(np.float64)[:, None]
        scale = float((haadf * mk).sum() / max(float((np.broadcast_to(rows, haadf.shape) * mk).sum()), 1e-30))
        dH = 1.0 / np.sqrt(_haadf_variance(haadf, hbar, haadf_model_error, haadf_gain))
        dbar = np.vstack([dbar, dH.mean(axis=1, keepdims=True)]).astype(DTYPE)
        op = _fused_operator(W, r)
    else:
        hbar, unit, scale = 0.0, 1.0, bbar / wbar
        op = ChannelMix(W, np.eye(k))
    col = op.adjoint(dbar)
    c = tv_scale * float(np.mean(col)) / 4.0
    return TVConstants(bbar, unit, hbar, scale, c)


def tv_weight(mu, W: Operator, constants: TVConstants) -> np.ndarray:
    """Absolute TV weight ``lam = mu wbar / (sqrt(bbar) unit)`` for a dimensionless ``mu``.

    In units of the typical unknown (``bbar / wbar``), ``lam`` grows as ``sqrt(bbar)``
    while the data term grows as ``bbar``: one ``mu`` weighs TV in proportion to the
    relative noise level ``1 / sqrt(bbar)``, the same at every dose.
    """
    mu = np.asarray(mu, np.float64)
    if np.any(mu < 0) or not np.all(np.isfinite(mu)):
        raise ValueError(f"the TV weight mu must be finite and >= 0, got {mu}")
    c = TVConstants.coerce(constants)
    wbar = float(np.mean(W.row_sums()))
    return mu * wbar / (np.sqrt(c.bbar) * c.unit)


def tv_solve(
    W: Operator,
    counts: np.ndarray,
    *,
    model: Model,
    mu=None,
    lam=None,
    haadf: np.ndarray | None = None,
    r: np.ndarray | None = None,
    coupled: bool = True,
    image_shape: tuple[int, int] | None = None,
    haadf_model_error: float = 0.01,
    haadf_gain: float = 0.0,
    ray_mask: np.ndarray | None = None,
    haadf_ray_mask: np.ndarray | None = None,
    constants: TVConstants | dict | None = None,
    n_iter: int = 300,
    theta: float | None = None,
    adaptive: bool | None = None,
    tv_scale: float = 0.3,
    x0: np.ndarray | None = None,
    dual0: list | None = None,
    return_dual: bool = False,
    tol: float = 0.0,
    snapshots: Iterable[int] = (),
    callback: Callable | None = None,
    monitor_every: int | None = None,
    callback_every: int = 1,
    prior: str = "tv",
    huber_delta=0.0,
    slice_block: int | None = None,
) -> SolverResult:
    """Solve one of the regularised models for every column of ``counts``.

    Parameters
    ----------
    W : Operator
        Projector of one slice, ``(n_rays, n_vox)``.
    counts : ndarray, (k, n_rays, m)
        EDS line data, one problem per column (slices, parameter values, folds).
        For "poisson" and "fused" these should be the raw counts (a Gaussian
        pre-filter makes the likelihood wrong).
    model : {"ls", "poisson", "fused"}
    mu : float or array (m,)
        Dimensionless TV weight (converted by :func:`tv_weight`); or give ``lam``.
    lam : float or array (m,)
        Absolute TV weight (overrides ``mu``).
    haadf : ndarray, (n_rays_H, m) or (n_rays_H, 1)
        HAADF data (model "fused"), on the rays of ``W.modality("haadf")`` (``W``'s
        own unless the HAADF has tilts of its own).
    r : array (k,)
        Response ratios ``r_A`` of ``I^H = sum r_A I_A`` (model "fused").
    coupled : bool
        Vectorial (channel-coupled) TV.
    image_shape : (ny, nx), optional
        Default: square.
    haadf_model_error : float
        ``eps``: std of the HAADF model error as a fraction of the mean HAADF signal.
    haadf_gain : float
        ``g``: HAADF variance per unit signal (1 for electron counts; 0: ignore).
    ray_mask : ndarray (n_rays,) or (n_rays, m), optional
        1 for rays used, 0 for rays held out (cross-validation): they enter no term.
    haadf_ray_mask : ndarray (n_rays_H,) or (n_rays_H, m), optional
        The HAADF rays' mask (model "fused"). Default: ``ray_mask`` when one geometry
        serves both modalities, else every HAADF ray used.
    constants : TVConstants or dict, optional
        The data-derived constants (default :func:`tv_constants` of these columns);
        give the constants of a whole volume to make each slice independent of its batch.
    n_iter : int
        Iteration budget.
    theta, tv_scale : float
        Solver speed knobs (step balance in units of the typical unknown, default
        :data:`DEFAULT_THETA`; TV operator scale); no effect on the minimiser.
    adaptive : bool, optional
        Residual balancing of the step balance, per column, from ``theta``
        (:func:`~chemtomo.reconstruct.pdhg.pdhg`'s ``adaptive``, residuals compared at
        the typical unknown); default :data:`DEFAULT_ADAPTIVE` (off: measured in
        docs/performance.md, "Fused-TV: one solve faster"). No effect on the minimiser.
    x0 : ndarray (k, n_vox, m), optional
        Start (default: see module docstring).
    dual0 : list of ndarray, optional
        Dual start: ``info["dual"]`` of an earlier solve of the same columns with the
        same ``constants``, model and prior (a warm start, with ``x0`` its maps); the
        duals are in the solver's whitened, scaled units, so they mean nothing to
        another set of constants.
    return_dual : bool
        Keep the final duals in ``info["dual"]`` (as large as the data and the gradient
        field together, so off by default).
    tol : float
        Stopping tolerance of :func:`~chemtomo.reconstruct.pdhg.pdhg` (0: full budget).
    snapshots, callback, callback_every :
        As in :func:`~chemtomo.reconstruct.pdhg.pdhg` (snapshots are returned as maps).
    monitor_every : int, optional
        Iterations between two evaluations of the objective and the residuals (their
        histories in ``info``). Default: every 10 with a ``tol`` (the stopping rule reads
        them), else the last iteration only: an evaluation costs about five iterations
        on the real example's slices (``docs/performance.md``), and the iterates are the
        same bits whatever this is.
    prior : {"tv", "huber"}
        The regulariser: TV, or the Huber-TV of :mod:`chemtomo.reconstruct.huber`
        (quadratic below ``huber_delta``, TV above).
    huber_delta : float or array (m,)
        The Huber threshold per voxel, in units of the typical unknown
        (``constants.scale``; prior "huber"; 0 is TV).
    slice_block : int, optional
        Couple the prior across slices: runs of ``slice_block`` consecutive columns are
        neighbouring slices (:class:`~chemtomo.reconstruct.huber.SliceGradient`; ``m`` a
        multiple of it). None: every column on its own (2-D).

    Returns
    -------
    SolverResult
        ``x``: the maps ``(k, n_vox, m)``, ``X_A`` (models "ls", "poisson"; factor
        "f") or ``X^b_A`` ("fused"; factor "z"); ``snapshots`` as maps;
        ``objective``, ``converged``, ``stop_reason`` from PDHG; ``info`` holds
        ``factor`` ("f" or "z"), ``lam`` (the absolute TV weights used, ``(m,)``),
        the ``objective``, ``primal_residual``, ``dual_residual`` histories
        ``(n_hist, m)``, ``iterations``, ``converged``, the noise and scale
        constants used, and (``return_dual``) ``dual``.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    n_iter = check_iterations(n_iter)
    counts = np.asarray(counts, DTYPE)
    if counts.ndim != 3 or counts.shape[1] != W.shape[0]:
        raise ValueError(f"counts must be (k, n_rays={W.shape[0]}, m), got {counts.shape}")
    if np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise ValueError("EDS counts must be finite and >= 0")
    k, n_rays, m = counts.shape
    n_vox = W.shape[1]
    shape = tuple(image_shape) if image_shape is not None else _square_shape(n_vox)
    if shape[0] * shape[1] != n_vox:
        raise ValueError(f"image_shape {shape} does not hold {n_vox} pixels")
    mask = _mask_columns(ray_mask, n_rays, m)
    if model == "fused":
        if haadf is None or r is None:
            raise ValueError("the fused model needs the HAADF data and the response ratios r_A")
        r = _fused_ratios(r, k)
        haadf = np.asarray(haadf, DTYPE)
        if haadf.ndim == 1:
            haadf = haadf[:, None]
        n_h = W.modality("haadf").shape[0]
        if haadf.shape[0] != n_h or haadf.shape[1] not in (1, m):
            raise ValueError(f"haadf must be (n_rays, m) = ({n_h}, {m}), got {haadf.shape}")
        haadf = np.ascontiguousarray(np.broadcast_to(haadf, (n_h, m)))
        if not (0 < haadf_model_error < 1):
            raise ValueError(f"haadf_model_error is a fraction in (0, 1), got {haadf_model_error}")
        if haadf_gain < 0:
            raise ValueError(f"haadf_gain must be >= 0, got {haadf_gain}")
    if lam is None and mu is None:
        raise ValueError("give a TV weight: mu (dimensionless) or lam (absolute)")
    mask_h = _haadf_mask(W, mask, haadf_ray_mask, m) if model == "fused" else None
    if constants is None:
        constants = tv_constants(W, counts, model, haadf=haadf, r=r, ray_mask=mask,
                                 haadf_model_error=haadf_model_error, haadf_gain=haadf_gain, tv_scale=tv_scale,
                                 haadf_ray_mask=mask_h)
    const = TVConstants.coerce(constants)
    lam = tv_weight(mu, W, const) if lam is None else np.asarray(lam, np.float64)
    if np.any(lam < 0) or not np.all(np.isfinite(lam)):
        raise ValueError(f"the TV weight must be finite and >= 0, got {lam}")
    lam = np.broadcast_to(lam, (m,)).astype(np.float64)

    B = np.ascontiguousarray(counts.reshape(k * n_rays, m))
    maskE = None if mask is None else np.tile(mask, (k, 1))
    d = data_row_scales(counts, model, const, haadf, haadf_model_error, haadf_gain)
    if model == "ls":
        data_f = RowScaled(WeightedL2(B, 1.0 / const.bbar, mask=maskE), d)
        K = RowScale(ChannelMix(W, np.eye(k)), d)
        noise = {"ls_variance": const.bbar}
    elif model == "poisson":
        data_f = RowScaled(KullbackLeibler(B, mask=maskE), d)
        K = RowScale(ChannelMix(W, np.eye(k)), d)
        noise = {}
    else:
        varH = _haadf_variance(haadf, const.hbar, haadf_model_error, haadf_gain)
        data_f = RowScaled(Separable([
            (k * n_rays, KullbackLeibler(B, mask=maskE)),
            (haadf.shape[0], WeightedL2(haadf, 1.0 / varH, mask=mask_h)),
        ]), d)
        K = RowScale(_fused_operator(W, r), d)
        noise = {"haadf_sigma_floor": float(haadf_model_error * const.hbar), "haadf_gain": haadf_gain}

    if x0 is None:
        x0 = _initial(W, counts, model, haadf, r, mask, mask_h)
    else:
        x0 = np.asarray(x0, DTYPE)
        if x0.shape != (k, n_vox, m):
            raise ValueError(f"x0 must be (k, n_vox, m) = {(k, n_vox, m)}, got {x0.shape}")
    z0 = np.ascontiguousarray(x0.reshape(k * n_vox, m))

    c = const.tv_operator_scale
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    D = Gradient2D(shape, k) if slice_block is None else SliceGradient(shape, k, slice_block, m)
    if prior == "tv" and slice_block is None:
        reg = GroupL21(lam / c, k, shape, coupled)
    else:  # h_delta(t / c) = h_{c delta}(t) / c: the functional sees c D x
        delta = np.asarray(huber_delta, np.float64) * const.scale if prior == "huber" else 0.0
        reg = HuberGroup(lam / c, c * np.broadcast_to(delta, (m,)), k, shape, 2 if slice_block is None else 3,
                         coupled)
    terms = [Term(K, data_f, "data"), Term(Scaled(D, c), reg, "tv")]
    theta = DEFAULT_THETA[model] if theta is None else float(theta)
    adaptive = DEFAULT_ADAPTIVE[model] if adaptive is None else bool(adaptive)
    res = pdhg(terms, n_iter, x0=z0, y0=dual0, nonneg=True, theta=theta * const.scale, adaptive=adaptive,
               theta_unit=const.scale, tol=tol,
               snapshots=snapshots, callback=callback, callback_every=callback_every,
               monitor_every=(10 if tol > 0 else n_iter) if monitor_every is None else monitor_every)
    split = lambda z: np.ascontiguousarray(z.reshape(k, n_vox, m))  # noqa: E731
    info = {k_: v for k_, v in res.info.items() if k_ != "dual" or return_dual}
    info.update({"model": model, "constants": const.as_dict(), "coupled": coupled, "prior": prior,
                 "slice_block": slice_block, **noise})
    info.update({"factor": "z" if model == "fused" else "f", "lam": lam})
    return SolverResult(split(res.x), res.n_iter, {i: split(v) for i, v in res.snapshots.items()},
                        objective=res.objective, converged=res.converged, stop_reason=res.stop_reason,
                        info=info)


def _initial(W, counts, model, haadf, r, mask, mask_h=None) -> np.ndarray:
    """A cheap start: SIRT of the EDS data, or (fused) the HAADF SIRT map split by mean composition."""
    k, n_rays, m = counts.shape
    mk = np.ones((n_rays, 1), DTYPE) if mask is None else mask
    if model == "fused":
        WH = W.modality("haadf")
        if WH is W.modality("eds"):
            h = sirt(W, haadf, INIT_SIRT_ITERATIONS, ray_mask=mk).x  # (n_vox, m)
        else:
            mkh = np.ones((WH.shape[0], 1), DTYPE) if mask_h is None else mask_h
            h = sirt(WH, haadf, INIT_SIRT_ITERATIONS, ray_mask=mkh).x
        eds_used = (counts * mk[None]).sum(axis=1).astype(np.float64)  # (k, m)
        share = np.asarray(r)[:, None] * eds_used
        share = share / np.maximum(share.sum(axis=0, keepdims=True), 1e-30)
        return (share[:, None, :] * h[None]).astype(DTYPE)
    b = np.ascontiguousarray(counts.transpose(1, 0, 2).reshape(n_rays, k * m))
    mk_k = np.tile(mk, (1, k)) if mk.shape[1] > 1 else mk
    x = sirt(W, b, INIT_SIRT_ITERATIONS, ray_mask=mk_k).x  # (n_vox, k*m), channel-major columns
    return np.ascontiguousarray(x.reshape(-1, k, m).transpose(1, 0, 2))
