"""Standard errors of the phantom study's core and shell compositions (issue 15).

:func:`bootstrap_core_shell` draws ``R`` parametric-bootstrap replicas of one
problem's data (the paper's dose, the first noise seed), reconstructs them with one
method at its chosen parameters in one batched solve (the replicas are extra slice
columns of the same solve, beside the measured data as column 0), and returns the
replicas' standard deviation of the mean core and shell Au weight fractions.

What is resampled: the raw EDS counts (Poisson replicas around the measured counts),
then filtered as the measured run was (Gaussian ``cfg.filter_sigma`` along the
sinogram) for the methods that see filtered data; the HAADF (for the methods that use
it) as Gaussian noise of standard deviation ``sqrt(HAADF)`` around the measured
images (its Poisson level). Held fixed, as in
:func:`chemtomo.pipeline.uncertainty.bootstrap_uncertainty`: the method's parameters,
its set-up constants (computed from the measured data), the fitted response ratios and
the particle mask of the measured reconstruction. Replica ``i`` draws from
``SeedSequence(seed).spawn(R)[i]``.
"""

from __future__ import annotations

import numpy as np

from ..geometry import sinogram_to_columns
from ..preprocess import gaussian_filter_stack
from ..projector import make_operator
from ..quantify import weight_fractions
from ..reconstruct import ChannelData, get_method
from ..reconstruct.bootstrap import check_replicas, gaussian_replica, poisson_replica, replica_generators
from .problem import Problem, StudyConfig, evaluate, maps_of
from .solvers import _tv_base, study_grid

__all__ = ["bootstrap_core_shell"]


def bootstrap_core_shell(problem: Problem, cfg: StudyConfig, method: str, chosen: dict, replicas: int,
                         seed: int = 0) -> dict:
    """Bootstrap standard errors of the mean core and shell Au weight fractions of one reconstruction.

    Parameters
    ----------
    problem : Problem
        The simulated data set (its projector ``W`` is rebuilt when it is None).
    cfg : StudyConfig
    method : str
        A method the study sweeps.
    chosen : dict
        Its parameters, as the study's candidates hold them (``{"n": ...}``,
        ``{"n": ..., "alpha": ...}``, ``{"mu": ...}``); other keys are ignored.
    replicas : int
        Bootstrap replicas (>= 2).
    seed : int
        Seed of the replicas (non-negative).

    Returns
    -------
    dict
        ``core_Au``, ``shell_Au``: the measured values recomputed as column 0 of the
        batched solve (the study's own numbers, for checking); ``core_Au_se``,
        ``shell_Au_se``: the replicas' standard deviations; ``replicas``, ``seed``.

    Raises
    ------
    ValueError
        ``replicas`` < 2, a negative seed or an unknown method.
    """
    replicas = check_replicas(replicas)
    m = get_method(method)
    W = problem.W if problem.W is not None else make_operator(problem.geometry)
    grid = study_grid(m.name, cfg)
    params = m.apply_choice(_tv_base(m, cfg), {k: chosen[k] for k in grid})
    s = problem.sim.series
    lines = problem.data.lines
    eds = {ln: [np.asarray(s.eds[ln], np.float32)] for ln in lines}
    haadf = [np.asarray(s.haadf, np.float32)]
    sigma = np.sqrt(np.clip(np.asarray(s.haadf, np.float64), 0.0, None))
    for rng in replica_generators(seed, replicas):
        for ln in lines:
            eds[ln].append(poisson_replica(s.eds[ln], rng))
        if m.needs_haadf:
            haadf.append(gaussian_replica(s.haadf, rng, sigma))
    cols = []
    for ln in lines:
        parts = eds[ln] if m.raw_counts else [gaussian_filter_stack(e, cfg.filter_sigma, "sinogram")
                                              for e in eds[ln]]
        cols.append(np.concatenate([sinogram_to_columns(p) for p in parts], axis=1))
    h = np.concatenate([sinogram_to_columns(x) for x in haadf], axis=1) if m.needs_haadf else None
    data = ChannelData(lines, np.stack(cols).astype(np.float32), h, problem.data.response_ratios)
    measured = ChannelData(lines, data.eds[:, :, :1], None if h is None else h[:, :1], data.response_ratios)
    constants = m.setup(W, measured, params)
    res = m.solve(W, data, params, constants=constants)
    x = np.asarray(res.maps)
    n = cfg.n_pixels
    m0, arrays = evaluate(problem, maps_of(x[:, :, 0], n), res.factor)
    mask = arrays["mask"]
    f = problem.factors
    q = f.f(lines) if res.factor == "f" else f.z(lines)
    au = [f[ln].element for ln in lines].index("Au")
    core, shell = problem.regions["core"], problem.regions["shell"]
    vals = np.empty((replicas, 2))
    for i in range(replicas):
        w = weight_fractions(maps_of(x[:, :, i + 1], n), q, mask)[au]
        vals[i] = w[core].mean(), w[shell].mean()
    se = vals.std(axis=0, ddof=1)
    return {"core_Au": m0["core_Au"], "shell_Au": m0["shell_Au"], "core_Au_se": float(se[0]),
            "shell_Au_se": float(se[1]), "replicas": replicas, "seed": int(seed)}
