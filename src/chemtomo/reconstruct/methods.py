"""The built-in reconstruction methods, each one registered :class:`~.registry.Method` object.

=============  ==========================================  ======  =====  ====  ==================
name           model                                       factor  HAADF  raw   automatic rule
=============  ==========================================  ======  =====  ====  ==================
eds_sirt       SIRT of each EDS line, non-negative          f       no     no    discrepancy (floor) on n
hebt_sirt      SIRT of HEBT's stacked system (eq 17)        z       yes    no    CV on (alpha, n)
ls_tv          least squares + TV (:mod:`.fused`)           f       no     yes   CV on mu
poisson_tv     Poisson likelihood + TV                      f       no     yes   CV on mu
fused_tv       Poisson EDS + Gaussian HAADF + TV            z       yes    yes   CV on mu
fused_huber    fused_tv's data terms + Huber-TV, 3-D        z       yes    yes   CV on (mu, huber)
=============  ==========================================  ======  =====  ====  ==================

A method takes the shared projector ``W`` of one slice and the data of a chunk of
slices (:class:`ChannelData`), and returns maps of every line with the factor they
are quantified by. Every default lives in the methods' ``Params`` dataclasses here.
Add a method with :func:`register` (see :mod:`.registry`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..projector.base import DTYPE, Operator
from .autoparam import CVResult, cv_hebt, cv_tv_weight
from .fused import TVConstants, tv_constants, tv_solve
from .hebt import check_alpha, hebt_sirt
from .registry import (
    ChannelData,
    FactorKind,
    Method,
    MethodParams,
    MethodResult,
    RuleInputs,
    WarmStart,
    register,
)
from .sirt import check_iterations, sirt
from .stopping import floor_discrepancy_sirt_iterations
from .warmstart import portable_duals, solver_duals, tv_lam

__all__ = ["EdsSirtParams", "FusedHuberParams", "FusedTvParams", "HebtSirtParams", "TvParams"]

# Candidate iteration counts of the SIRT rules and dimensionless TV weights (factor sqrt 2
# apart) of the regularised solvers' rule; the phantom study's sweeps use the same values.
SIRT_N_GRID = (10, 20, 30, 50, 75, 100, 150, 200, 300, 500)
HEBT_ALPHA_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
HEBT_N_GRID = (50, 100, 200, 500)
TV_MU_GRID = (0.06, 0.085, 0.12, 0.17, 0.24, 0.34, 0.48)
# The TV weight rule's own candidates (ls_tv, poisson_tv, fused_tv; not fused_huber): the same span,
# factor 2 apart, the log-parabolic choice interpolating between them. 4 folds x 4 mu x 8 slices is
# 2 solves of a 64-slice volume (the 7-point grid: 3.5); on the phantom at three doses and on two
# specimens of the suite the final weight-fraction MSE at its choice is within 1.05x of the 7-point
# rule's (docs/performance.md, bench/tv_rule_cost.py --grids). The studies' oracle sweeps keep TV_MU_GRID.
TV_MU_RULE_GRID = (0.06, 0.12, 0.24, 0.48)
# Huber thresholds of fused_huber (fractions of the typical unknown per voxel; factor 3 apart; measured best:
# 0.3 on smooth specimens, 0.03 on the sharp core-shell, docs/solvers.md; a wider grid is still to be measured)
HUBER_GRID = (0.03, 0.1, 0.3)


def _split_channels(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """(n_vox, k * s) channel-major columns -> (k, n_vox, s)."""
    return np.ascontiguousarray(x.reshape(x.shape[0], k, s).transpose(1, 0, 2))


def _finite_nonneg(name: str, value, optional: bool = False):
    if value is None and optional:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    v = float(value)
    if not (np.isfinite(v) and v >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


# ----------------------------------------------------------------------------- EDS-only SIRT

@dataclass(frozen=True)
class EdsSirtParams(MethodParams):
    """EDS-only SIRT.

    Attributes
    ----------
    n_iter : int
        SIRT iterations (positive).
    """

    n_iter: int = 100

    def __post_init__(self):
        self._set("n_iter", check_iterations(self.n_iter))


class EdsSirt(Method):
    """EDS-only SIRT with non-negativity: every line of every slice in one batched solve.

    Automatic rule: the iteration count by the discrepancy principle on the Poisson
    counts with a model-error floor estimated from the deviance curve
    (:func:`~chemtomo.reconstruct.stopping.floor_discrepancy_sirt_iterations`; without
    model error it is the classic rule,
    :func:`~chemtomo.reconstruct.autoparam.discrepancy_sirt_iterations`).
    """

    name = "eds_sirt"
    Params = EdsSirtParams
    factor = "f"
    default_grid = {"n": SIRT_N_GRID}
    # measured with tracemalloc (tests/pipeline/test_distributed.py checks the estimate holds)
    memory_factors = {"sparse": (4.0, 3.5), "batched": (6.0, 4.0)}

    def solve(self, W: Operator, data: ChannelData, params: EdsSirtParams, *, constants=None, snapshots=(),
              callback=None) -> MethodResult:
        """See :meth:`Method.solve`."""
        k, m, s = data.eds.shape
        b = np.ascontiguousarray(data.eds.transpose(1, 0, 2).reshape(m, k * s), dtype=DTYPE)
        res = sirt(W, b, params.n_iter, snapshots=snapshots, callback=callback)
        return MethodResult(
            _split_channels(res.x, k, s), "f",
            {n: _split_channels(v, k, s) for n, v in res.snapshots.items()},
            {"n_iter": res.n_iter, "residual_norms": res.residual_norms},
        )

    def choose(self, W: Operator, inputs: RuleInputs, grid):
        """The iteration count by the discrepancy principle with a model-error floor (``grid["n"]``)."""
        return floor_discrepancy_sirt_iterations(W, inputs.counts, grid["n"], data=inputs.data,
                                                 noise_factor=inputs.noise_factor)

    def apply_choice(self, params: EdsSirtParams, chosen) -> EdsSirtParams:
        """``{"n": ...}`` -> ``n_iter``."""
        return params.replace(n_iter=int(chosen["n"]))


# ----------------------------------------------------------------------------- HEBT

@dataclass(frozen=True)
class HebtSirtParams(MethodParams):
    """HEBT by SIRT.

    Attributes
    ----------
    n_iter : int
        SIRT iterations (positive).
    alpha : float
        HAADF weight of the stacked system, in [0, 1) (dimensionless).
    """

    n_iter: int = 100
    alpha: float = 0.8

    def __post_init__(self):
        self._set("n_iter", check_iterations(self.n_iter))
        self._set("alpha", check_alpha(self.alpha))


class HebtSirt(Method):
    """HEBT by SIRT on the stacked system (eq 17); maps are ``X^b_A``, quantified by z_A.

    Automatic rule: ``(alpha, n)`` by cross-validation on held-out rays
    (:func:`~chemtomo.reconstruct.autoparam.cv_hebt`).
    """

    name = "hebt_sirt"
    Params = HebtSirtParams
    factor = "z"
    needs_haadf = True
    fits_each_line = False  # the response-ratio fit to the HAADF can give a line no weight (docs/absorption.md)
    default_grid = {"alpha": HEBT_ALPHA_GRID, "n": HEBT_N_GRID}
    memory_factors = {"sparse": (6.0, 5.0), "batched": (6.0, 4.0)}

    def solve(self, W: Operator, data: ChannelData, params: HebtSirtParams, *, constants=None, snapshots=(),
              callback=None) -> MethodResult:
        """See :meth:`Method.solve`."""
        self.check_data(data)
        k, m, s = data.eds.shape
        res = hebt_sirt(W, data.haadf, list(data.eds), data.response_ratios, params.alpha, params.n_iter,
                        snapshots=snapshots, callback=callback)
        n = W.shape[1]
        split = lambda x: np.ascontiguousarray(x.reshape(k, n, s))  # noqa: E731
        return MethodResult(split(res.x), "z", {i: split(v) for i, v in res.snapshots.items()},
                            {"n_iter": res.n_iter, "alpha": params.alpha, "residual_norms": res.residual_norms})

    def choose(self, W: Operator, inputs: RuleInputs, grid):
        """``(alpha, n)`` by cross-validation (``grid["alpha"]``, ``grid["n"]``)."""
        if inputs.n_tilts is None or inputs.n_pixels is None:
            raise ValueError("hebt_sirt's rule needs n_tilts and n_pixels (sinogram layout)")
        return cv_hebt(W, inputs.counts, inputs.haadf, inputs.r, grid["alpha"], grid["n"],
                       n_tilts=inputs.n_tilts, n_pixels=inputs.n_pixels,
                       filter_sigma=inputs.filter_sigma_px, filter_axes=inputs.filter_axes)

    def apply_choice(self, params: HebtSirtParams, chosen) -> HebtSirtParams:
        """``{"alpha": ..., "n": ...}`` -> ``alpha``, ``n_iter``."""
        return params.replace(n_iter=int(chosen["n"]), alpha=float(chosen["alpha"]))


# ----------------------------------------------------------------------------- regularised solvers

@dataclass(frozen=True)
class TvParams(MethodParams):
    """The regularised solvers (:func:`~chemtomo.reconstruct.fused.tv_solve`).

    Attributes
    ----------
    n_iter : int
        PDHG iteration budget (the solvers want 200-300; ``tol`` may stop them earlier).
    mu : float
        Dimensionless TV weight (one ``mu``, the same smoothing at every dose); the
        default is the middle of the automatic rule's grid (``auto`` chooses it).
    lam : float or None
        Absolute TV weight; when given it overrides ``mu``.
    coupled : bool
        Vectorial (channel-coupled) TV: shared edges.
    tol : float
        Stopping tolerance (0: the full budget).
    theta : float or None
        Primal-dual step balance in units of the typical unknown (None: the model's
        measured default); changes the speed, not the minimiser.
    """

    n_iter: int = 100
    mu: float = 0.17
    lam: float | None = None
    coupled: bool = True
    tol: float = 0.0
    theta: float | None = None

    def __post_init__(self):
        self._set("n_iter", check_iterations(self.n_iter))
        self._set("mu", _finite_nonneg("mu (the dimensionless TV weight)", self.mu))
        self._set("lam", _finite_nonneg("lam (the absolute TV weight)", self.lam, optional=True))
        if not isinstance(self.coupled, (bool, np.bool_)):
            raise ValueError(f"coupled must be True or False, got {self.coupled!r}")
        self._set("coupled", bool(self.coupled))
        self._set("tol", _finite_nonneg("tol", self.tol))
        if self.theta is not None:
            th = float(self.theta)
            if not (np.isfinite(th) and th > 0):
                raise ValueError(f"theta (the step balance) must be a positive number or None, got {self.theta!r}")
            self._set("theta", th)

    def model_options(self) -> dict:
        """Options of the data model beyond the solver's (none for the EDS-only models)."""
        return {}


@dataclass(frozen=True)
class FusedTvParams(TvParams):
    """The fused HAADF-EDS model: :class:`TvParams` plus the HAADF noise.

    Attributes
    ----------
    haadf_model_error : float
        ``eps``: std of the linear HAADF model's error as a fraction of the mean HAADF
        signal (dimensionless; 1 %: the paper's regression leaves 1.8 % of the variance).
    haadf_gain : float
        ``g``: HAADF variance per unit signal (1 for electron counts; 0: arbitrary units).
    """

    mu: float = 0.34
    haadf_model_error: float = 0.01
    haadf_gain: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        eps = _finite_nonneg("haadf_model_error", self.haadf_model_error)
        if not 0 < eps < 1:  # as tv_solve requires: 0 makes the HAADF rows' variance 0 where the gain is 0
            raise ValueError(f"haadf_model_error is a fraction in (0, 1), got {self.haadf_model_error!r}")
        self._set("haadf_model_error", eps)
        self._set("haadf_gain", _finite_nonneg("haadf_gain", self.haadf_gain))

    def model_options(self) -> dict:
        """``haadf_model_error`` and ``haadf_gain``."""
        return {"haadf_model_error": self.haadf_model_error, "haadf_gain": self.haadf_gain}


class TvMethod(Method):
    """One of :func:`~chemtomo.reconstruct.fused.tv_solve`'s models as a method.

    The EDS data they see are the raw counts (``raw_counts``: a Poisson likelihood
    needs them). Set-up: the volume's :class:`~chemtomo.reconstruct.fused.TVConstants`
    (the ``mu`` -> ``lam`` conversion and noise levels of all slices), so that a
    slice does not depend on its chunk. Automatic rule: ``mu`` by cross-validation on
    held-out rays (:func:`~chemtomo.reconstruct.autoparam.cv_tv_weight`). Memory: the
    default allowance of :class:`Method`.
    """

    raw_counts = True
    default_grid = {"mu": TV_MU_GRID}
    rule_grid = {"mu": TV_MU_RULE_GRID}
    warm_start = True

    def __init__(self, name: str, model: str, params: type[TvParams], factor: FactorKind, needs_haadf: bool):
        self.name, self.model, self.Params, self.factor, self.needs_haadf = name, model, params, factor, needs_haadf

    def solve(self, W: Operator, data: ChannelData, params: TvParams, *, constants=None, snapshots=(),
              callback=None) -> MethodResult:
        """See :meth:`Method.solve`; ``info`` holds ``mu``, ``lam`` and the solver's histories.

        Warm start (``data.warm``): the solve starts from the state's maps and its duals
        (:mod:`~chemtomo.reconstruct.warmstart`: carried unscaled, converted to this data's
        whitening and weights); ``data.keep_warm`` returns the final maps and duals.
        """
        self.check_data(data)
        self.check_warm(data)
        mu = None if params.lam is not None else params.mu
        eds = np.asarray(data.eds, DTYPE)
        x0 = dual0 = None
        if data.warm is not None or data.keep_warm:
            if constants is None:  # what tv_solve computes from these columns
                constants = tv_constants(W, eds, self.model, haadf=data.haadf, r=data.response_ratios,
                                         **params.model_options())
            const = TVConstants.coerce(constants)
            lam = tv_lam(W, const, data.n_slices, mu, params.lam)
            dual_kw = {"counts": eds, "model": self.model, "constants": const, "lam": lam, "haadf": data.haadf,
                       "model_options": params.model_options()}
        if data.warm is not None:
            x0 = data.warm.maps
            dual0 = solver_duals(data.warm.state, **dual_kw) if data.warm.state else None
        res = tv_solve(W, eds, model=self.model, mu=mu, lam=params.lam,
                       coupled=params.coupled, haadf=data.haadf, r=data.response_ratios, n_iter=params.n_iter,
                       tol=params.tol, theta=params.theta, constants=constants, snapshots=snapshots,
                       callback=callback, x0=x0, dual0=dual0, return_dual=data.keep_warm,
                       **params.model_options(), **self.prior_options(params, data.n_slices))
        dual = res.info.pop("dual", None)
        info = {"n_iter": res.n_iter, "mu": mu, "lam": float(res.info["lam"][0]), "coupled": params.coupled,
                "warm_started": data.warm is not None,
                **{k: v for k, v in res.info.items() if k not in ("factor", "lam")}}
        warm = None
        if data.keep_warm:
            warm = WarmStart(res.x, portable_duals(dual, **dual_kw), self.name)
        return MethodResult(res.x, res.info["factor"], res.snapshots, info, warm)

    def prior_options(self, params: TvParams, n_slices: int) -> dict:
        """Options of :func:`~chemtomo.reconstruct.fused.tv_solve`'s prior for ``n_slices`` slices (TV: none)."""
        return {}

    def setup(self, W: Operator, data: ChannelData, params: TvParams) -> dict:
        """The volume's :class:`~chemtomo.reconstruct.fused.TVConstants` (all slices), as a dict."""
        return tv_constants(W, np.asarray(data.eds, DTYPE), self.model, haadf=data.haadf, r=data.response_ratios,
                            **params.model_options()).as_dict()

    def choose(self, W: Operator, inputs: RuleInputs, grid):
        """``mu`` by cross-validation (``grid["mu"]``; ``inputs.n_iter`` iterations per solve)."""
        budget = {} if inputs.n_iter is None else {"n_iter": inputs.n_iter}
        # the model the final solve uses: the run's coupling, step balance and HAADF noise model
        p = self.params(inputs.params)
        return cv_tv_weight(W, inputs.counts, self.model, grid["mu"], haadf=inputs.haadf, r=inputs.r,
                            constants=inputs.constants, coupled=p.coupled, theta=p.theta, **p.model_options(),
                            **budget)

    def apply_choice(self, params: TvParams, chosen) -> TvParams:
        """``{"mu": ...}`` -> ``mu`` (and no absolute ``lam``)."""
        return params.replace(mu=float(chosen["mu"]), lam=None)


@dataclass(frozen=True)
class FusedHuberParams(FusedTvParams):
    """The fused model with the Huber-TV prior: :class:`FusedTvParams` plus the prior's options.

    Attributes
    ----------
    huber : float
        The Huber threshold ``delta`` per voxel, as a fraction of the typical unknown
        (``TVConstants.scale``; dimensionless, > 0): gradients below it are smoothed
        quadratically, those above it cost their length as in TV. ``auto`` chooses it.
    slice_coupling : bool
        Couple the prior across neighbouring slices (3-D gradient) inside a chunk.
    halo_slices : int
        Neighbouring slices each chunk of the volume path sees on either side (context
        solved with it and discarded, so that a slice's prior sees across chunk
        boundaries); 0 for none. Used only with ``slice_coupling``.

    The default ``huber`` is the threshold most often best on the smooth specimens of the
    suite (docs/solvers.md); the sharp core-shell prefers 0.03 (``auto`` chooses it).
    The default ``haadf_model_error`` is 5 % (``fused_tv``'s 1 %): data of a continuous
    specimen differ from the voxel projector's model by 1.1-1.4 % rms of the mean HAADF,
    4-7 % at the particle's edge (measured on the suite's core-shell and diffuse alloy), which
    a HAADF term weighted at 1 % imposes on the edge voxels; 5 % was best or level on the
    quick suite's four cases (docs/solvers.md, "The HAADF term's weight").
    """

    huber: float = 0.3
    haadf_model_error: float = 0.05
    slice_coupling: bool = True
    halo_slices: int = 4

    def __post_init__(self):
        super().__post_init__()
        h = _finite_nonneg("huber (the Huber threshold)", self.huber)
        if h <= 0:
            raise ValueError(f"huber (the Huber threshold) must be > 0 (0 is fused_tv), got {self.huber!r}")
        self._set("huber", h)
        if not isinstance(self.slice_coupling, (bool, np.bool_)):
            raise ValueError(f"slice_coupling must be True or False, got {self.slice_coupling!r}")
        self._set("slice_coupling", bool(self.slice_coupling))
        if isinstance(self.halo_slices, bool) or int(self.halo_slices) != self.halo_slices or self.halo_slices < 0:
            raise ValueError(f"halo_slices must be an integer >= 0, got {self.halo_slices!r}")
        self._set("halo_slices", int(self.halo_slices))


class FusedHuber(TvMethod):
    """The fused HAADF-EDS model with a Huber-TV prior, coupled over lines and (optionally) slices.

    The data terms are ``fused_tv``'s; the prior is :mod:`chemtomo.reconstruct.huber`'s
    (quadratic for small gradients: composition gradients; linear for large ones:
    edges), vectorial over the lines and, with ``slice_coupling``, 3-D over the slices
    of a chunk (with ``halo_slices`` of context from the neighbouring chunks). The
    weight ``mu`` converts to ``lam`` as TV's. Automatic rule: ``(mu, huber)`` by the
    same cross-validation as ``fused_tv``'s ``mu`` (:func:`~chemtomo.reconstruct.autoparam.cv_tv_weight`),
    once per candidate threshold, the threshold with the lowest held-out deviance kept.
    """

    default_grid = {"mu": TV_MU_GRID, "huber": HUBER_GRID}
    rule_grid = {}  # its rule keeps the 7-point mu grid (the coarse grid is measured for fused_tv's rule only)

    def __init__(self):
        super().__init__("fused_huber", "fused", FusedHuberParams, "z", True)

    def prior_options(self, params: FusedHuberParams, n_slices: int) -> dict:
        """The Huber prior, across the ``n_slices`` columns (neighbouring slices) with ``slice_coupling``."""
        return {"prior": "huber", "huber_delta": params.huber,
                "slice_block": int(n_slices) if params.slice_coupling else None}

    def halo_slices(self, params: FusedHuberParams) -> int:
        """``params.halo_slices`` with ``slice_coupling``, else 0."""
        return params.halo_slices if params.slice_coupling else 0

    def solve(self, W: Operator, data: ChannelData, params: FusedHuberParams, *, constants=None, snapshots=(),
              callback=None) -> MethodResult:
        """See :meth:`Method.solve`; the halo slices of ``data`` are solved and left out of the maps."""
        res = super().solve(W, data, params, constants=constants, snapshots=snapshots, callback=callback)
        a, b = data.halo
        if a or b:
            cut = slice(a, data.n_slices - b)
            res.maps = np.ascontiguousarray(res.maps[:, :, cut])
            res.snapshots = {i: np.ascontiguousarray(v[:, :, cut]) for i, v in res.snapshots.items()}
            if res.warm is not None:
                res.warm = res.warm.columns(a, data.n_slices - b)
            res.info["halo"] = [int(a), int(b)]
        return res

    def choose(self, W: Operator, inputs: RuleInputs, grid):
        """``(mu, huber)``: ``mu`` by cross-validation at each ``grid["huber"]``, the lowest held-out deviance kept."""
        budget = {} if inputs.n_iter is None else {"n_iter": inputs.n_iter}
        p = self.params(inputs.params)
        runs = []
        for h in sorted(float(v) for v in grid["huber"]):
            q = p.replace(huber=h)
            cv = cv_tv_weight(W, inputs.counts, self.model, grid["mu"], haadf=inputs.haadf, r=inputs.r,
                              constants=inputs.constants, coupled=q.coupled, theta=q.theta, **q.model_options(),
                              **self.prior_options(q, inputs.counts.shape[2]), **budget)
            runs.append((h, cv))
        h, best = min(runs, key=lambda hc: float(np.min(hc[1].scores)))
        grid_all = [{**g, "huber": hh} for hh, cv in runs for g in cv.grid]
        scores = np.concatenate([cv.scores for _, cv in runs])
        return CVResult({"mu": best.params["mu"], "huber": h}, grid_all, scores,
                        best.rule + f"; huber = {h:g}, the threshold with the lowest held-out deviance of "
                        f"{[hh for hh, _ in runs]}",
                        {**best.info, "huber_scores": [float(np.min(cv.scores)) for _, cv in runs]})

    def apply_choice(self, params: FusedHuberParams, chosen) -> FusedHuberParams:
        """``{"mu": ..., "huber": ...}`` -> ``mu``, ``huber`` (and no absolute ``lam``)."""
        chosen = dict(chosen)
        out = params.replace(mu=float(chosen["mu"]), lam=None)
        return out.replace(huber=float(chosen["huber"])) if "huber" in chosen else out


EDS_SIRT = register(EdsSirt())
HEBT_SIRT = register(HebtSirt())
LS_TV = register(TvMethod("ls_tv", "ls", TvParams, "f", False))
POISSON_TV = register(TvMethod("poisson_tv", "poisson", TvParams, "f", False))
FUSED_TV = register(TvMethod("fused_tv", "fused", FusedTvParams, "z", True))
FUSED_HUBER = register(FusedHuber())
