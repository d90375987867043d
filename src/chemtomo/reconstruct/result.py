"""What every iterative solver returns (:class:`SolverResult`) and what its callback sees."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class IterState:
    """What a callback sees after each iteration.

    Attributes
    ----------
    iteration : int
        Iterations done (from 1).
    x : ndarray, (n_in, k)
        The current estimate (a solver may hand its own buffer: copy to keep it).
    residual_norm : ndarray, (k,)
        ``||b - A x_t||`` per column, before the update of step ``t`` (NaN where a
        solver has no single data residual).
    """

    iteration: int
    x: np.ndarray
    residual_norm: np.ndarray


@dataclass
class SolverResult:
    """The result of an iterative solver (SIRT, chunked SIRT, PDHG, the regularised models).

    Attributes
    ----------
    x : ndarray
        Final estimate: ``(n_in, k)`` (or ``(n_in,)`` for a 1-D input); the
        regularised models of :func:`~chemtomo.reconstruct.fused.tv_solve` give
        maps ``(k, n_vox, m)``.
    n_iter : int
        Iterations done.
    snapshots : dict[int, ndarray]
        Copies of ``x`` after the iterations asked for.
    residual_norms : ndarray, (n_iter, k)
        ``||b - A x||`` per iteration and column, before each update (SIRT; over the
        used rays when a ray mask is given); empty for solvers without one.
    objective : ndarray, (n_hist, k)
        Objective per monitored iteration and column (PDHG); empty otherwise.
    converged : bool or None
        Whether a stopping rule was met (None: the solver has no stopping rule).
    stop_reason : str
        ``"n_iter"`` (the budget was used), ``"tol"`` (the stopping rule) or
        ``"callback"`` (a callback returned True).
    info : dict
        Solver-specific details (engine, histories, constants).
    """

    x: np.ndarray
    n_iter: int
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)
    residual_norms: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    objective: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    converged: bool | None = None
    stop_reason: str = "n_iter"
    info: dict = field(default_factory=dict)


def check_iterations(n_iter) -> int:
    """``n_iter`` as a positive int; ValueError naming the value otherwise."""
    if isinstance(n_iter, bool) or not float(n_iter).is_integer() or int(n_iter) < 1:
        raise ValueError(f"the number of iterations must be a positive integer, got {n_iter!r}")
    return int(n_iter)
