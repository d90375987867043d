"""EDS-SIRT's stopping rule when the model is not the data's: the discrepancy principle with a floor.

The discrepancy principle (:func:`~chemtomo.reconstruct.autoparam.discrepancy_sirt_iterations`)
stops SIRT at the first iteration count ``n`` where the Poisson deviance of the raw counts
from the prediction, over its expectation under the Poisson model, ``rho(n) = D(n) / E[D]``,
falls to 1. When the data are not the model's (projected on a finer grid than the
reconstruction's, Gaussian-filtered before SIRT, a detector blur, ...) the deviance keeps a
*model-error floor*: ``rho(n)`` levels off above 1 and the classic rule never stops (it
returns the grid's largest ``n``: on the specimen suite up to 1.5x the best weight-fraction
error on the particle's voxels at 1/10 of the paper's dose, ``docs/solvers.md``).

The floor is estimated from the data: the lowest ``rho`` over the grid, ``rho_min``, is
what the iterations can take out of the deviance at all; the rule stops at the first ``n``
with

    rho(n) <= max(1, rho_min + floor_tol)

i.e. once the deviance has fallen to the noise's expectation, or to within ``floor_tol``
times that expectation of the floor, whichever comes first: further iterations could lower
it by no more than that. Without model error the floor is below ``1 - floor_tol`` (the late
iterations fit the noise), the target is 1 and the rule is the classic one (on the paper's
disk phantom it chooses the classic rule's ``n`` at every dose and seed). The floor is
trusted only when the curve has levelled off at the grid's end (its last step fell by less
than ``floor_tol``); a curve still falling there keeps the classic target (first ``n`` with
``rho <= 1``, else the largest ``n``: more iterations are still fitting signal).

(Measured, not adopted: the floor alone, ``rho_min + floor_tol`` below 1 too, runs 5-10x
past the phantom's best ``n`` at 1/100 of the paper's dose, where ``rho`` falls from 0.96 to
0.72 while the iterations fit the noise.)

``floor_tol`` (:data:`FLOOR_TOL`) was measured on the specimen suite and the paper's disk
phantom (``docs/solvers.md``, ``scripts/sirt_stopping_rules.py``).
"""

from __future__ import annotations

import numpy as np

from ..projector.base import Operator
from .autoparam import CVResult, discrepancy_sirt_iterations

#: The deviance's margin above its floor, in units of the noise's expected deviance.
FLOOR_TOL = 0.03


def floor_target(ratios, floor_tol: float = FLOOR_TOL) -> tuple[float, bool]:
    """The stopping target ``max(1, rho_min + floor_tol)`` of a deviance-ratio curve.

    Parameters
    ----------
    ratios : sequence of float
        ``rho(n) = D(n) / E[D]`` at increasing ``n``.
    floor_tol : float
        Margin above the floor (>= 0), in units of the noise's expected deviance.

    Returns
    -------
    target : float
        The ratio at or below which the rule stops.
    floor : bool
        True when the floor sets the target (``rho_min + floor_tol > 1`` and the curve's
        last step fell by less than ``floor_tol``); False: the classic target 1.
    """
    rho = np.asarray(ratios, np.float64)
    if rho.ndim != 1 or rho.size == 0 or not np.all(np.isfinite(rho)):
        raise ValueError(f"ratios must be a non-empty 1-D sequence of finite numbers, got {ratios!r}")
    if not (np.isfinite(floor_tol) and floor_tol >= 0):
        raise ValueError(f"floor_tol must be a finite number >= 0, got {floor_tol!r}")
    level = float(rho.min()) + float(floor_tol)
    levelled = rho.size >= 2 and float(rho[-2] - rho[-1]) < floor_tol
    if level > 1.0 and levelled:
        return level, True
    return 1.0, False


def floor_discrepancy_sirt_iterations(
    W: Operator, counts: np.ndarray, n_grid, *, data: np.ndarray | None = None,
    noise_factor: float = 1.0, floor_tol: float = FLOOR_TOL,
) -> CVResult:
    """EDS-only SIRT: the iteration count by the discrepancy principle with a model-error floor.

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
    floor_tol : float
        Margin of the deviance ratio above its floor (see the module docstring).

    Returns
    -------
    CVResult
        ``params = {"n": ...}``; ``scores`` the deviance ratio per candidate; ``info``
        holds ``target``, ``floor`` (whether the floor set the target) and ``reached``.
    """
    base = discrepancy_sirt_iterations(W, counts, n_grid, data=data, noise_factor=noise_factor)
    target, floor = floor_target(base.scores, floor_tol)
    grid = [g["n"] for g in base.grid]
    below = np.flatnonzero(base.scores <= target)
    reached = bool(below.size)
    n = grid[int(below[0])] if reached else grid[-1]
    if floor:
        rule = (f"discrepancy principle with the floor the data show: first n with deviance ratio <= "
                f"its minimum over the grid {target - floor_tol:.4g} + {floor_tol:g}")
    else:
        rule = "discrepancy principle: first n with Poisson deviance <= its expectation" + (
            "" if reached else " (not reached and no floor yet: the deviance still falls at the grid's end; "
            "largest n)")
    return CVResult({"n": n}, base.grid, base.scores, rule,
                    {**base.info, "reached": reached, "floor": floor, "target": float(target),
                     "floor_tol": float(floor_tol)})
