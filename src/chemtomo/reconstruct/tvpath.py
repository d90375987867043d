"""A regularisation path: the same columns solved at a sequence of TV weights, each from the last.

Continuation (homotopy) in the TV weight: the first weight of the path is solved from
the default start with the full budget, every later one is warm-started from the maps
and the duals of the one before (:func:`~chemtomo.reconstruct.fused.tv_solve`'s ``x0``,
``dual0``) and run a shorter budget. The TV term's duals are rescaled by the ratio of
the weights: they live in a ball of radius ``lam / c`` per pixel, and where the
gradient is non-zero they sit on its boundary, so the rescaled dual is the old
solution's subgradient at the new weight (and feasible for it).

Used by the cross-validation of the TV weight
(:func:`~chemtomo.reconstruct.autoparam.cv_tv_weight` with ``schedule="continuation"``):
the folds and slices are the columns, the candidate weights the path, from the
largest down (measured against the other orders in ``docs/performance.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .fused import tv_solve
from .result import SolverResult, check_iterations


def tv_path(
    W, counts: np.ndarray, mus: Sequence[float], *, n_iter: int, warm_iterations: int,
    on_point: Callable[[int, float, SolverResult], bool | None] | None = None, **solver,
) -> list[int]:
    """Solve ``counts``'s columns at every ``mu`` of ``mus`` in turn, each warm-started from the last.

    Parameters
    ----------
    W : Operator
        Projector of one slice.
    counts : ndarray, (k, n_rays, m)
        The columns (as :func:`~chemtomo.reconstruct.fused.tv_solve`).
    mus : sequence of float
        Dimensionless TV weights, in the order solved (one weight for all columns at
        each point of the path).
    n_iter : int
        Iterations of the first point (from the default start).
    warm_iterations : int
        Iterations of every later point (from the point before).
    on_point : callable, optional
        ``on_point(j, mu, result)`` after the ``j``-th point's solve (``result`` its
        :class:`~chemtomo.reconstruct.result.SolverResult`, maps in ``result.x``);
        returning True ends the path there.
    **solver
        Passed to every ``tv_solve`` (model, haadf, r, ray_mask, constants, ...);
        ``constants`` should be given, so that every point converts ``mu`` alike.

    Returns
    -------
    list of int
        The iterations run at each point solved (their sum times ``m`` is the path's
        cost in column-iterations).

    Raises
    ------
    ValueError
        An empty or negative ``mus``, a budget below 1, or a keyword this function sets
        itself (``mu``, ``lam``, ``x0``, ``dual0``, ``return_dual``).
    """
    mus = [float(v) for v in mus]
    if not mus or any(not (np.isfinite(v) and v >= 0) for v in mus):
        raise ValueError(f"mus must be a non-empty sequence of finite weights >= 0, got {mus}")
    n_iter, warm_iterations = check_iterations(n_iter), check_iterations(warm_iterations)
    taken = sorted({"mu", "lam", "x0", "dual0", "return_dual"} & set(solver))
    if taken:
        raise ValueError(f"tv_path sets {taken} itself; give the weights as mus")
    x = dual = None
    done: list[int] = []
    for j, mu in enumerate(mus):
        if dual is not None and mus[j - 1] > 0:
            # the TV dual (the second term's) scaled with the weight: the same subgradient, feasible again
            dual = [dual[0], dual[1] * np.float32(mu / mus[j - 1])]
        res = tv_solve(W, counts, mu=mu, n_iter=n_iter if j == 0 else warm_iterations, x0=x, dual0=dual,
                       return_dual=True, **solver)
        done.append(int(res.n_iter))
        dual = res.info.pop("dual")
        x = res.x
        if on_point is not None and on_point(j, mu, res):
            break
    return done
