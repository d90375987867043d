"""Parameters chosen from the data alone: cross-validation and the discrepancy principle.

A user of real data cannot score a reconstruction against a phantom, so every
method here picks its parameters from the measured counts. Two rules:

**Cross-validation on held-out rays** (HEBT's ``(alpha, n)``; the TV weight ``mu``
of the regularised solvers):

1. Split the rays (beam positions x tilts; the same split for every line, the
   HAADF and every slice) at random into ``K`` folds (``K = 4``, fixed seed: the
   rule is deterministic).
2. For fold ``f``, reconstruct from the other ``K - 1`` folds only (held-out rays
   enter no term; for methods fed Gaussian-filtered sinograms, the training data
   are filtered by normalised convolution of the training rays alone, so no
   held-out count leaks in), at every candidate parameter; all folds and
   candidates are columns of one batched solve.
3. Score each candidate on the held-out rays by the *composition deviance* of
   their raw counts: the multinomial deviance of the line counts given their
   total, against the predicted shares ``mu_A / sum_B mu_B`` (``mu_A = W X_A``, or
   ``W X^b_A / r_A``). Poisson counts conditioned on their total are multinomial, so
   this is an exact likelihood, and it scores what quantification uses: the
   ratios between lines, not the total intensity. (With one line: the Poisson
   deviance.)
4. Choose the minimiser. HEBT: ``(alpha, n)``. Regularised solvers: ``mu``,
   interpolated (parabola in ``log mu`` through the best grid point and its
   neighbours) and scaled by ``K / (K - 1)``: the training solves see ``(K-1)/K``
   of the rays, so the same weight regularises them ``K/(K-1)`` times more
   strongly relative to their data term than it does the full data.

**The discrepancy principle** (EDS-SIRT's iteration count ``n``; Morozov 1966, as
used to stop Richardson-Lucy / EM iterations on Poisson data, Bertero et al. 2010):
SIRT runs on all the data, and stops at the first ``n`` of the grid where the
Poisson deviance of the raw counts from the prediction ``W X_A`` falls to its
expectation under the Poisson model, ``sum E[D]`` (:func:`expected_deviance`);
where model error keeps it above (high dose: the fit never reaches the noise),
the largest ``n``. ``noise_factor`` scales the expectation for counts whose
variance exceeds their mean (e.g. background-subtracted line intensities).

A HAADF at tilts of its own (``W.modality("haadf")``, :mod:`chemtomo.projector.modality`):
its rays get folds of their own, the same as the EDS ray's at a tilt both share (so no
HAADF ray at a held-out EDS ray's tilt and pixel trains that fold), at random elsewhere
(:func:`haadf_training_masks`); the scores are the EDS's as before.

Why two rules? Measured on the phantom (``docs/solvers.md``), held-out prediction
chooses SIRT iteration counts 2-3x past the fraction-map optimum at 10x and 100x
lower dose (1.1-1.7x its weight-fraction error): SIRT's extra iterations add
high-frequency noise that ray sums average out, so predicting rays tolerates it.
The discrepancy principle lands within 1.1x there. For HEBT it fixes ``n`` per
alpha but not alpha, and for the TV weight the deviance at the best weight drifts
from 1.11 to 0.96 of its expectation between the paper's dose and 100x less, so
those keep cross-validation (within 1.2x of the oracle at every dose).
:func:`choose_parameters` applies the rule of each method.

One module over 500 lines on purpose: every rule's column layout (folds x
candidates x slices in one batched solve) and its per-modality folds (a HAADF
at tilts of its own) are read side by side here; the statistics they share are
in :mod:`chemtomo.reconstruct.heldout`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..geometry import match_tilts
from ..projector import concurrent_workers, map_threads
from ..projector.base import DTYPE, Operator
from ..projector.columns import HebtColumns, HebtColumnsModal
from .fused import tv_constants, tv_solve
from .hebt import haadf_row_weight
from .heldout import (
    DEFAULT_FOLDS,
    DEFAULT_SEED,
    discrepancy_ratio,
    filter_training,
    heldout_deviance,
    ray_folds,
    training_masks,
)
from .registry import RuleInputs, canonical_name, get_method, method_names
from .sirt import sirt
from .tvpath import tv_path

# the TV rule's optional stopping rule: the choice checked every CHECK_EVERY iterations, settled when it
# moves by less than choice_tol (relative) twice in a row; off by default (CHOICE_TOL = 0, see cv_tv_weight)
CHOICE_TOL = 0.0
CHECK_EVERY = 20
# the TV rule's schedules: all candidates as columns of one solve, or the candidates as a continuation path
SCHEDULES = ("batched", "continuation")
DEFAULT_SCHEDULE = "batched"  # continuation: 2.5x one solve on the phantom, but a wrong choice on the real example
WARM_DIVISOR = 3  # continuation: each point after the first runs n_iter // WARM_DIVISOR iterations
# the batched schedule's columns are independent problems, solved in groups whose maps take at most this many
# bytes (the same bits): on the real example (5 lines, 172^2 px, 160 columns in groups of 35) the peak resident
# memory of make real-example-tv falls from 3.1 to 1.6 GB at the same time (docs/performance.md)
RULE_GROUP_BYTES = 20 * 2**20

# ----------------------------------------------------------------------------- results

@dataclass
class CVResult:
    """A cross-validated choice.

    Attributes
    ----------
    params : dict
        The chosen parameters.
    grid : list of dict
        The candidates.
    scores : ndarray
        Held-out deviance per candidate (summed over folds and rays; see the module docstring);
        NaN for a candidate a rule left out (``as_dict`` writes None).
    rule : str
        How the choice was made (for the report).
    info : dict
    """

    params: dict
    grid: list
    scores: np.ndarray
    rule: str
    info: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The choice as a JSON-ready dict: params, rule, grid, scores and the plain entries of ``info``."""
        return {"params": dict(self.params), "rule": self.rule,
                "grid": [dict(g) for g in self.grid],
                "scores": [float(v) if np.isfinite(v) else None for v in self.scores],
                **{k: v for k, v in self.info.items() if isinstance(v, (int, float, str, bool, list))}}


def haadf_training_masks(W: Operator, n_folds: int = DEFAULT_FOLDS, seed: int = DEFAULT_SEED) -> np.ndarray | None:
    """Training masks ``(n_haadf_rays, K)`` of a HAADF at tilts of its own; None when ``W`` serves both.

    The EDS rays' folds are :func:`~chemtomo.reconstruct.heldout.ray_folds` ``(n_rays, n_folds,
    seed)``; a HAADF ray takes the fold of the EDS ray at the same pixel of a tilt both
    modalities share (:func:`~chemtomo.geometry.match_tilts`), and a random fold (seed
    ``seed + 1``) at the HAADF's other tilts.

    Raises
    ------
    ValueError
        A HAADF projector of its own whose geometries ``W`` does not state.
    """
    WE, WH = W.modality("eds"), W.modality("haadf")
    if WH is WE:
        return None
    ge, gh = W.modality_geometry("eds"), W.modality_geometry("haadf")
    if ge is None or gh is None:
        raise ValueError("cross-validation with a HAADF at tilts of its own needs both geometries: build the "
                         "projector with chemtomo.projector.make_modality_operator")
    fe = ray_folds(WE.shape[0], n_folds, seed).reshape(ge.n_tilts, ge.n_pixels)
    fh = ray_folds(WH.shape[0], n_folds, seed + 1).reshape(gh.n_tilts, gh.n_pixels)
    ie, ih = match_tilts(ge.angles_deg, gh.angles_deg)
    fh[ih] = fe[ie]
    return training_masks(fh.ravel())


def _check_counts(counts, W) -> np.ndarray:
    counts = np.asarray(counts, DTYPE)
    if counts.ndim != 3 or counts.shape[1] != W.shape[0]:
        raise ValueError(f"counts must be (k, n_rays={W.shape[0]}, s), got {counts.shape}")
    return counts


# ----------------------------------------------------------------------------- SIRT

def cv_sirt_iterations(
    W: Operator, counts: np.ndarray, n_grid, *, n_tilts: int, n_pixels: int,
    filter_sigma: float = 0.8, filter_axes: str = "sinogram",
    n_folds: int = DEFAULT_FOLDS, seed: int = DEFAULT_SEED,
) -> CVResult:
    """EDS-only SIRT: the iteration count by cross-validation.

    Parameters
    ----------
    W : Operator
    counts : ndarray, (k, n_rays, s)
        Raw EDS counts.
    n_grid : iterable of int
        Candidate iteration counts.
    n_tilts, n_pixels : int
        Sinogram layout (for the training filter).
    filter_sigma, filter_axes :
        The Gaussian pre-filter the method uses (applied to the training rays only).
    n_folds, seed :
        The split.
    """
    counts = _check_counts(counts, W)
    k, n_rays, s = counts.shape
    n_grid = sorted({int(n) for n in n_grid})
    masks = training_masks(ray_folds(n_rays, n_folds, seed))
    train = filter_training(counts, masks, n_tilts, n_pixels, filter_sigma, filter_axes)  # (k, nr, K s)
    K = masks.shape[1]
    cols = K * s
    b = np.ascontiguousarray(train.transpose(1, 0, 2).reshape(n_rays, k * cols))
    mk = np.tile(np.repeat(masks, s, axis=1), (1, k))
    run = sirt(W, b, max(n_grid), ray_mask=mk, snapshots=n_grid)
    scores = []
    for n in n_grid:
        x = run.snapshots[n].reshape(-1, k, cols)  # (n_vox, k, K s)
        pred = np.stack([W.forward(np.ascontiguousarray(x[:, a])) for a in range(k)])  # (k, nr, K s)
        held = np.repeat(1.0 - masks, s, axis=1)
        scores.append(float(heldout_deviance(np.tile(counts, (1, 1, K)), pred, held).sum()))
    scores = np.array(scores)
    best = n_grid[int(np.argmin(scores))]
    return CVResult({"n": best}, [{"n": n} for n in n_grid], scores,
                    f"{K}-fold CV on held-out rays, composition deviance of raw counts; argmin over n",
                    {"n_folds": K, "seed": seed})


# ----------------------------------------------------------------------------- HEBT

def cv_hebt(
    W: Operator, counts: np.ndarray, haadf: np.ndarray, r, alphas, n_grid, *,
    n_tilts: int, n_pixels: int, filter_sigma: float = 0.8, filter_axes: str = "sinogram",
    n_folds: int = DEFAULT_FOLDS, seed: int = DEFAULT_SEED,
) -> CVResult:
    """HEBT-SIRT: ``(alpha, n)`` by cross-validation, every alpha and fold in one batched SIRT.

    Parameters
    ----------
    counts : ndarray, (k, n_rays, s)
        Raw EDS counts (filtered per fold like the method's input).
    haadf : ndarray, (n_rays, s)
        HAADF (unfiltered, as HEBT uses it).
    r : array (k,)
        Response ratios.
    alphas, n_grid :
        Candidates.
    """
    counts = _check_counts(counts, W)
    k, n_rays, s = counts.shape
    r = np.asarray(r, np.float64)
    alphas = [float(a) for a in alphas]
    n_grid = sorted({int(n) for n in n_grid})
    masks = training_masks(ray_folds(n_rays, n_folds, seed))
    K = masks.shape[1]
    A = len(alphas)
    train = filter_training(counts, masks, n_tilts, n_pixels, filter_sigma, filter_axes)  # (k, nr, K s)
    masks_h = haadf_training_masks(W, n_folds, seed)
    # columns: alpha-major, then fold, then slice
    col_alpha = np.repeat(alphas, K * s).astype(DTYPE)
    eds_cols = np.tile(train, (1, 1, A))  # (k, nr, A K s)
    mk = np.tile(np.repeat(masks, s, axis=1), (1, A))  # (nr, A K s)
    if masks_h is None:
        haadf = np.asarray(haadf, DTYPE).reshape(n_rays, s)
        b = np.concatenate([(1 - col_alpha) * r[a] * eds_cols[a] for a in range(k)]
                           + [col_alpha * np.tile(haadf, (1, A * K))], axis=0)
        op = HebtColumns(W, k, col_alpha)
        ray_mask = np.tile(mk, (k + 1, 1))
    else:  # a HAADF at tilts of its own: its rows weighted c alpha (hebt_operator), its rays folded apart
        WH = W.modality("haadf")
        haadf = np.asarray(haadf, DTYPE).reshape(WH.shape[0], s)
        c = haadf_row_weight(n_rays, WH.shape[0])
        b = np.concatenate([(1 - col_alpha) * r[a] * eds_cols[a] for a in range(k)]
                           + [(DTYPE(c) * col_alpha) * np.tile(haadf, (1, A * K))], axis=0)
        op = HebtColumnsModal(W.modality("eds"), WH, k, col_alpha, c)
        ray_mask = np.vstack([np.tile(mk, (k, 1)), np.tile(np.repeat(masks_h, s, axis=1), (1, A))])
    run = sirt(op, np.ascontiguousarray(b, DTYPE), max(n_grid), ray_mask=ray_mask, snapshots=n_grid)
    held = 1.0 - mk
    truth = np.tile(counts, (1, 1, A * K))
    grid, scores = [], []
    per = {}
    for n in n_grid:
        xb = run.snapshots[n].reshape(k, -1, A * K * s)  # X^b_A
        pred = np.stack([W.forward(np.ascontiguousarray(xb[a])) / r[a] for a in range(k)])
        per[n] = heldout_deviance(truth, pred, held).reshape(A, K * s).sum(axis=1)
    for i, alpha in enumerate(alphas):
        for n in n_grid:
            grid.append({"n": n, "alpha": alpha})
            scores.append(float(per[n][i]))
    scores = np.array(scores)
    best = grid[int(np.argmin(scores))]
    return CVResult(dict(best), grid, scores,
                    f"{K}-fold CV on held-out rays, composition deviance of raw counts; argmin over (alpha, n)",
                    {"n_folds": K, "seed": seed})


# ----------------------------------------------------------------------------- TV solvers

def _log_parabola_min(x: np.ndarray, y: np.ndarray) -> float:
    """Minimiser of a parabola in ``log x`` through the best point and its neighbours (clamped to the grid)."""
    i = int(np.argmin(y))
    if i == 0 or i == len(x) - 1:
        return float(x[i])
    lx = np.log(x[i - 1:i + 2])
    c = np.polyfit(lx, y[i - 1:i + 2], 2)
    if c[0] <= 0:
        return float(x[i])
    return float(np.exp(np.clip(-c[1] / (2 * c[0]), lx[0], lx[2])))


def cv_tv_weight(
    W: Operator, counts: np.ndarray, model: str, mus, *, haadf=None, r=None,
    n_folds: int = DEFAULT_FOLDS, seed: int = DEFAULT_SEED, n_iter: int = 250, constants=None,
    choice_tol: float = CHOICE_TOL, check_every: int = CHECK_EVERY, schedule: str = DEFAULT_SCHEDULE,
    warm_iterations: int | None = None, **solver,
) -> CVResult:
    """The dimensionless TV weight ``mu`` of :func:`~chemtomo.reconstruct.fused.tv_solve` by CV.

    The chosen ``mu`` is the log-parabolic minimiser of the held-out deviance times
    ``K / (K - 1)``. Two schedules of the solves behind the scores:

    - ``"continuation"``: the folds x slices are the columns, the
      candidates a path from the largest ``mu`` down, the first solved with ``n_iter``
      iterations, every later one warm-started from the one before with
      ``warm_iterations`` (:func:`~chemtomo.reconstruct.tvpath.tv_path`). Cost
      ``(n_iter + (L - 1) warm_iterations) K s`` column-iterations: with the defaults
      (300, 100, ``L = 7``, ``K = 4``, 8 slices) 1.5 solves of a 64-slice volume
      against the batched rule's 3.5, for a final weight-fraction error within 1.05x
      of the batched rule's choice on the phantom at three doses and on two specimens of
      the suite (``docs/performance.md``, ``bench/tv_rule_cost.py``). Not the default:
      on the real example (5 mu, 200 iterations, 66 per later point) it chose the
      grid's upper end (0.32) where the batched rule chose 0.0384; its solves there
      are too far from converged for the short warm budget.
    - ``"batched"`` (the default): all folds x candidates are columns of one solve of
      ``n_iter`` iterations, ``n_iter K L s`` column-iterations.

    Stopping rule on the choice (batched schedule): every ``check_every`` iterations the held-out
    scores and the choice are computed (``K L s`` forward projections, a small
    part of an iteration's cost); the solve stops once the choice has moved by less
    than ``choice_tol`` (relative) over the last two checks with the same best grid
    point inside the grid (at an end the choice is clamped to the grid point and
    cannot move), else after ``n_iter`` iterations. ``choice_tol = 0`` (the default)
    runs the full budget: on the phantom (64 slices of 97^2, 31 tilts, 2 lines, 300
    iterations) the choice still swings across the grid up to ~150 iterations and by
    5-15 % between checks 20 iterations apart at 160-240 (``docs/performance.md``),
    so no tolerance that keeps the choice would stop it early there.

    Parameters
    ----------
    counts : ndarray, (k, n_rays, s)
        Raw EDS counts.
    model : {"ls", "poisson", "fused"}
    mus : sequence of float
        Candidate grid (log-spaced).
    haadf, r :
        For the fused model.
    n_iter : int
        Iteration budget of each solve.
    constants : TVConstants, optional
        Default: :func:`~chemtomo.reconstruct.fused.tv_constants` of ``counts`` (give a whole
        volume's when the choice is made on a few of its slices).
    choice_tol : float
        Relative change of the chosen ``mu`` below which the solve stops (0: never early;
        e.g. 0.02, a twentieth of the grid's sqrt(2) spacing).
    check_every : int
        Iterations between two checks of the choice.
    schedule : {"batched", "continuation"}
        How the candidates are solved (above); default ``DEFAULT_SCHEDULE`` ("batched").
    warm_iterations : int, optional
        Continuation: iterations of every candidate after the first (default
        ``n_iter // WARM_DIVISOR``, at least 1).
    **solver
        Passed to ``tv_solve`` (coupled, haadf_model_error, ...).

    Returns
    -------
    CVResult
        ``info`` holds ``iterations`` (run; continuation: summed over the path), ``n_iter``
        (the budget), ``column_iterations`` (iterations times columns: the rule's cost in
        units of one slice's solve iteration), ``checks`` (``[iteration, mu_cv]`` at each
        check; batched), ``schedule``, and for the continuation ``warm_iterations`` and
        ``path_iterations`` (per candidate, from the largest ``mu`` down).

    Raises
    ------
    ValueError
        An unknown ``schedule``, a negative ``choice_tol`` (or one given with the
        continuation schedule), a ``check_every`` below 1.
    """
    counts = _check_counts(counts, W)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if not (np.isfinite(choice_tol) and choice_tol >= 0):
        raise ValueError(f"choice_tol must be a finite number >= 0, got {choice_tol!r}")
    if schedule == "continuation" and choice_tol > 0:
        raise ValueError(f"choice_tol ({choice_tol!r}) stops the batched schedule's solve; the continuation "
                         "schedule has its own budget (warm_iterations): give one or the other")
    if isinstance(check_every, bool) or int(check_every) < 1:
        raise ValueError(f"check_every must be a positive integer, got {check_every!r}")
    k, n_rays, s = counts.shape
    mus = np.sort(np.asarray(mus, np.float64))
    masks = training_masks(ray_folds(n_rays, n_folds, seed))
    K = masks.shape[1]
    L = mus.size
    # columns: fold-major, then mu, then slice
    col_mask = np.repeat(masks, L * s, axis=1)
    col_mu = np.tile(np.repeat(mus, s), K)
    b = np.tile(counts, (1, 1, K * L))
    h = None if haadf is None else np.tile(np.asarray(haadf, DTYPE).reshape(-1, s), (1, K * L))
    masks_h = haadf_training_masks(W, n_folds, seed) if model == "fused" else None
    if masks_h is not None:  # a HAADF at tilts of its own: its rays folded apart
        solver = {**solver, "haadf_ray_mask": np.repeat(masks_h, L * s, axis=1)}
    # the constants of all the data: the same mu -> lam conversion in every fold and in the final solve
    if constants is None:
        constants = tv_constants(W, counts, model, haadf=haadf, r=r,
                                 **{k: v for k, v in solver.items()
                                    if k in ("haadf_model_error", "haadf_gain", "tv_scale")})
    unit = np.asarray(r, DTYPE)[:, None, None] if model == "fused" else None
    n_vox = W.shape[1]
    if schedule == "continuation":
        return _cv_tv_continuation(W, counts, model, mus, masks, masks_h, haadf, r, constants, unit, n_iter,
                                   warm_iterations, seed, solver)

    def score(z):
        maps = z.reshape(k, n_vox, K * L * s)
        maps = maps if unit is None else maps / unit
        pred = np.stack([W.forward(np.ascontiguousarray(maps[a])) for a in range(k)])  # (k, nr, K L s)
        return heldout_deviance(b, pred, 1.0 - col_mask).reshape(K, L, s).sum(axis=(0, 2))

    checks = []

    def watch(state):
        if state.iteration >= n_iter:
            return None
        sc = score(state.x)
        checks.append((state.iteration, _log_parabola_min(mus, sc), int(np.argmin(sc))))
        if len(checks) < 3:
            return None
        (_, m0, i0), (_, m1, i1), (_, m2, i2) = checks[-3:]
        return bool(i0 == i1 == i2 and 0 < i2 < L - 1 and abs(np.log(m1 / m0)) <= np.log1p(choice_tol)
                    and abs(np.log(m2 / m1)) <= np.log1p(choice_tol))

    if choice_tol > 0:  # the choice is watched on all the columns at once
        res = tv_solve(W, b, model=model, mu=col_mu, haadf=h, r=r, ray_mask=col_mask, constants=constants,
                       n_iter=n_iter, callback=watch, callback_every=int(check_every), **solver)
        x, n_run, stopped = res.x, res.n_iter, res.stop_reason == "callback"
    else:
        x, n_run = _grouped_tv_solve(W, b, model, col_mu, h, r, col_mask, constants, n_iter, solver), n_iter
        stopped = False
    scores = score(x)
    mu_cv = _log_parabola_min(mus, scores)
    mu = mu_cv * K / (K - 1)
    i = int(np.argmin(scores))
    edge = "lower" if i == 0 else "upper" if i == L - 1 else ""
    return CVResult(
        {"mu": float(mu)}, [{"mu": float(v)} for v in mus], scores,
        f"{K}-fold CV on held-out rays, composition deviance of raw counts; log-parabolic argmin "
        f"mu_cv = {mu_cv:.4g}, times K/(K-1) = {K / (K - 1):.3g} for the full data"
        + (f"; stopped after {n_run} of {n_iter} iterations (choice settled to {choice_tol:g})"
           if stopped else "")
        + (f" (the best score is at the grid's {edge} end: widen the grid to see past it)" if edge else ""),
        {"n_folds": K, "seed": seed, "mu_cv": float(mu_cv), "n_iter": n_iter, "at_grid_edge": edge,
         "iterations": int(n_run), "column_iterations": int(n_run) * K * L * s,
         "choice_tol": float(choice_tol), "checks": [[int(it), float(m)] for it, m, _ in checks],
         "schedule": "batched"},
    )


def _grouped_tv_solve(W, b, model, col_mu, h, r, col_mask, constants, n_iter, solver) -> np.ndarray:
    """The rule's columns solved in groups of at most :data:`RULE_GROUP_BYTES` of maps, ``(k, n_vox, m)``.

    The columns are independent problems with the volume's constants (or blocks of
    ``slice_block`` coupled ones, kept whole), so the groups give the maps of one solve of
    them all, bit for bit (tested), at a smaller working set. With two or more cores the
    groups run at once on threads (:func:`~chemtomo.projector.map_threads`), their count a
    multiple of the workers.
    """
    k, _, m = b.shape
    block = int(solver.get("slice_block") or 1)  # a prior across slices couples blocks of consecutive columns
    group = max(1, RULE_GROUP_BYTES // (k * W.shape[1] * np.dtype(DTYPE).itemsize)) // block * block or block
    n_groups = -(-m // group)
    workers = concurrent_workers(n_groups) if W.thread_safe() else 1
    if workers > 1:  # as many groups per worker, as even as the blocks allow
        n_groups = -(-n_groups // workers) * workers
        per = -(-m // n_groups)
        group = -(-per // block) * block
    haadf_mask = solver.get("haadf_ray_mask")
    x = np.empty((k, W.shape[1], m), DTYPE)

    def solve(a):
        cols = slice(a, min(a + group, m))
        kw = solver if haadf_mask is None else {**solver, "haadf_ray_mask": haadf_mask[:, cols]}
        return cols, tv_solve(W, np.ascontiguousarray(b[:, :, cols]), model=model, mu=col_mu[cols],
                              haadf=None if h is None else np.ascontiguousarray(h[:, cols]), r=r,
                              ray_mask=np.ascontiguousarray(col_mask[:, cols]), constants=constants,
                              n_iter=n_iter, **kw).x

    for _, (cols, xg) in map_threads(solve, range(0, m, group), workers):
        x[:, :, cols] = xg
    return x


def _tv_choice(mus: np.ndarray, scores: np.ndarray, K: int) -> tuple[float, float, str]:
    """``(mu, mu_cv, edge)`` of the held-out scores per candidate: the log-parabolic argmin, times K/(K-1)."""
    mu_cv = _log_parabola_min(mus, scores)
    i = int(np.argmin(scores))
    return mu_cv * K / (K - 1), mu_cv, "lower" if i == 0 else "upper" if i == len(mus) - 1 else ""


def _cv_tv_continuation(W, counts, model, mus, masks, masks_h, haadf, r, constants, unit, n_iter,
                        warm_iterations, seed, solver) -> CVResult:
    """:func:`cv_tv_weight`'s continuation schedule: the folds x slices as columns, the grid as a path.

    The candidates are solved one after another from the largest ``mu`` down
    (:func:`~chemtomo.reconstruct.tvpath.tv_path`), the first with ``n_iter``
    iterations from the default start (as the batched rule solves every candidate),
    each later one warm-started from its larger neighbour's maps and duals with
    ``warm_iterations`` (default ``n_iter // WARM_DIVISOR``). Measured on the phantom
    at the paper's dose (300 iterations; ``docs/performance.md``): downwards, the choice
    moves steadily towards the batched rule's (0.125) as the warm budget grows (0.080,
    0.110, 0.127 at 50, 100, 150 per point); upwards it is closer at 100 (0.127) but
    erratic (0.102 at 50, 0.080 at 75), and from the middle outwards it is 0.105.
    """
    k, n_rays, s = counts.shape
    K, L = masks.shape[1], mus.size
    warm = max(1, n_iter // WARM_DIVISOR) if warm_iterations is None else warm_iterations
    col_mask = np.repeat(masks, s, axis=1)  # columns: fold-major, then slice
    b = np.tile(counts, (1, 1, K))
    h = None if haadf is None else np.tile(np.asarray(haadf, DTYPE).reshape(-1, s), (1, K))
    if masks_h is not None:
        solver = {**solver, "haadf_ray_mask": np.repeat(masks_h, s, axis=1)}
    scores = np.full(L, np.nan)
    n_vox = W.shape[1]

    def score(j, mu, res):
        maps = res.x.reshape(k, n_vox, K * s)
        maps = maps if unit is None else maps / unit
        pred = np.stack([W.forward(np.ascontiguousarray(maps[a])) for a in range(k)])  # (k, nr, K s)
        scores[L - 1 - j] = float(heldout_deviance(b, pred, 1.0 - col_mask).sum())

    done = tv_path(W, b, mus[::-1], n_iter=n_iter, warm_iterations=warm, on_point=score, model=model,
                   haadf=h, r=r, ray_mask=col_mask, constants=constants, **solver)
    mu, mu_cv, edge = _tv_choice(mus, scores, K)
    return CVResult(
        {"mu": float(mu)}, [{"mu": float(v)} for v in mus], scores,
        f"{K}-fold CV on held-out rays, composition deviance of raw counts, the grid solved as a path from the "
        f"largest mu down ({n_iter} iterations, then {warm} per point from its neighbour); log-parabolic argmin "
        f"mu_cv = {mu_cv:.4g}, times K/(K-1) = {K / (K - 1):.3g} for the full data"
        + (f" (the best score is at the grid's {edge} end: widen the grid to see past it)" if edge else ""),
        {"n_folds": K, "seed": seed, "mu_cv": float(mu_cv), "n_iter": n_iter, "at_grid_edge": edge,
         "iterations": int(sum(done)), "column_iterations": int(sum(done)) * K * s, "choice_tol": 0.0,
         "checks": [], "schedule": "continuation", "warm_iterations": int(warm),
         "path_iterations": [int(v) for v in done]},
    )


# ----------------------------------------------------------------------------- SIRT: discrepancy

def discrepancy_sirt_iterations(
    W: Operator, counts: np.ndarray, n_grid, *, data: np.ndarray | None = None,
    noise_factor: float = 1.0,
) -> CVResult:
    """EDS-only SIRT: the iteration count by the discrepancy principle on Poisson counts.

    Parameters
    ----------
    W : Operator
    counts : ndarray, (k, n_rays, s)
        Raw EDS counts (the noise model is Poisson on these).
    n_grid : iterable of int
        Candidate iteration counts (the choice is one of them).
    data : ndarray (k, n_rays, s), optional
        What SIRT reconstructs (e.g. the Gaussian-filtered counts; default ``counts``).
    noise_factor : float
        Variance over mean of the counts (1: Poisson).

    Returns
    -------
    CVResult
        ``params = {"n": ...}``; ``scores`` the deviance ratio ``D(n) / (noise_factor
        sum E[D])`` per candidate.
    """
    counts = _check_counts(counts, W)
    if not (np.isfinite(noise_factor) and noise_factor > 0):
        raise ValueError(f"noise_factor (variance over mean) must be positive, got {noise_factor}")
    data = counts if data is None else _check_counts(data, W)
    if data.shape != counts.shape:
        raise ValueError(f"data {data.shape} and counts {counts.shape} must have the same shape")
    k, n_rays, s = counts.shape
    n_grid = sorted({int(n) for n in n_grid})
    if not n_grid or n_grid[0] < 1:
        raise ValueError(f"the iteration grid must hold positive integers, got {n_grid}")
    b = np.ascontiguousarray(data.transpose(1, 0, 2).reshape(n_rays, k * s))
    run = sirt(W, b, max(n_grid), snapshots=n_grid)
    ratios = []
    for n in n_grid:
        x = run.snapshots[n] if n in run.snapshots else run.x
        pred = W.forward(x).reshape(n_rays, k, s).transpose(1, 0, 2)
        ratios.append(discrepancy_ratio(counts, pred, noise_factor, per_column=False))
    ratios = np.array(ratios)
    below = np.flatnonzero(ratios <= 1.0)
    n = n_grid[int(below[0])] if below.size else n_grid[-1]
    reached = bool(below.size)
    return CVResult({"n": n}, [{"n": v} for v in n_grid], ratios,
                    "discrepancy principle: first n with Poisson deviance <= its expectation"
                    + ("" if reached else " (not reached: model error above the noise; largest n)"),
                    {"noise_factor": float(noise_factor), "reached": reached})


def estimate_noise_factor(stacks, min_counts: float = 30.0) -> float:
    """Variance over mean of count images, from their second differences along the last axis.

    For ``r = b[i-1] - 2 b[i] + b[i+1]`` of independent counts with variance ``f`` times
    their mean, ``E[r^2] = f (mu[i-1] + 4 mu[i] + mu[i+1])`` plus the signal's own
    curvature; the median of ``r^2 / (b[i-1] + 4 b[i] + b[i+1])`` over pixels where that
    sum is at least ``min_counts`` (Gaussian regime), divided by the median of a
    chi-square with one degree of freedom (0.4549), estimates ``f`` while ignoring the
    edges, where the curvature dominates. Measured on the phantom's Poisson sinograms
    (``f = 1``): 1.17-1.21 at the paper's dose (the signal's curvature), 1.02-1.07 at
    10x less, 0.88-0.90 at 100x less.

    Parameters
    ----------
    stacks : array or list of arrays
        Unfiltered count images (any shape; differences along the last axis).
    min_counts : float

    Returns
    -------
    float
    """
    num, den = [], []
    for s in (stacks if isinstance(stacks, (list, tuple)) else [stacks]):
        b = np.asarray(s, np.float64)
        r = b[..., :-2] - 2 * b[..., 1:-1] + b[..., 2:]
        d = b[..., :-2] + 4 * b[..., 1:-1] + b[..., 2:]
        ok = d >= min_counts
        num.append(r[ok] ** 2)
        den.append(d[ok])
    num, den = np.concatenate(num), np.concatenate(den)
    if num.size < 100:
        raise ValueError(f"too few pixels with {min_counts:g} or more counts to estimate the noise level "
                         f"({num.size}); give the noise factor")
    return float(np.median(num / den) / 0.45493642311957283)


# ----------------------------------------------------------------------------- one entry point

def choose_parameters(
    method: str, W: Operator, counts: np.ndarray, *, data: np.ndarray | None = None,
    haadf: np.ndarray | None = None, r=None, n_tilts: int | None = None, n_pixels: int | None = None,
    filter_sigma: float = 0.0, filter_axes: str = "sinogram", grid: dict | None = None,
    n_iter: int = 300, noise_factor: float = 1.0, constants=None, params=None,
) -> CVResult:
    """The parameters of ``method`` chosen from the data alone, by that method's rule.

    Parameters
    ----------
    method : str
        A registered method with a rule (its :meth:`~chemtomo.reconstruct.registry.Method.choose`):
        ``eds_sirt`` (discrepancy principle on ``n`` with a model-error floor, :mod:`.stopping`),
        ``hebt_sirt`` (CV on ``alpha, n``), ``ls_tv`` / ``poisson_tv`` / ``fused_tv`` (CV on ``mu``).
    W : Operator
        Projector of one slice.
    counts : ndarray, (k, n_rays, s)
        Raw (unfiltered) EDS counts of the ``s`` slices the choice is made on.
    data : ndarray (k, n_rays, s), optional
        The method's EDS input when it differs from ``counts`` (Gaussian-filtered
        for the SIRT methods); used by the discrepancy rule.
    haadf : ndarray (n_rays, s), optional
        HAADF columns (bimodal methods).
    r : array (k,), optional
        Response ratios (bimodal methods).
    n_tilts, n_pixels : int
        Sinogram layout, needed when ``filter_sigma > 0`` (CV filters the training rays).
    filter_sigma, filter_axes :
        The Gaussian pre-filter of the SIRT methods' input.
    grid : dict, optional
        Candidates by name, updating the method's rule candidates
        (:meth:`~chemtomo.reconstruct.registry.Method.rule_candidates`: its ``default_grid``
        with its ``rule_grid``, e.g. fused_tv's 4-point ``TV_MU_RULE_GRID``).
    n_iter : int
        Iterations of the regularised solves.
    noise_factor : float
        Variance over mean of the counts (discrepancy rule).
    constants : TVConstants or dict, optional
        The regularised solvers' constants of the whole volume, when the choice is
        made on some of its slices.
    params : MethodParams or dict, optional
        The run's parameters: the rule's solves use those it does not choose (e.g.
        ``coupled`` and the fused model's HAADF noise), as the final solve does.

    Returns
    -------
    CVResult
    """
    m = get_method(method) if canonical_name(method) in method_names() else None
    if m is None or not m.default_grid:
        raise ValueError(f"no automatic parameter rule for method {method!r}; rules exist for "
                         f"{[n for n in method_names() if get_method(n).default_grid]}")
    unknown = sorted(set(grid or {}) - set(m.default_grid))
    if unknown:
        raise ValueError(f"grid names {unknown} are not candidates of {m.name}'s rule; it takes "
                         f"{sorted(m.default_grid)}")
    g = m.rule_candidates(grid)
    if m.needs_haadf and (haadf is None or r is None):
        raise ValueError(f"{m.name} needs the HAADF data and the response ratios to choose its parameters")
    inputs = RuleInputs(counts, data=data, haadf=haadf, r=r, n_tilts=n_tilts, n_pixels=n_pixels,
                        filter_sigma_px=filter_sigma, filter_axes=filter_axes, n_iter=n_iter,
                        noise_factor=noise_factor, constants=constants,
                        params=None if params is None else m.params(params))
    return m.choose(W, inputs, g)
