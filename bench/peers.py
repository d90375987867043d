#!/usr/bin/env python
"""chemtomo against the CPU peers a user could pick instead: time to equal quality.

One process, one run, the same data and the same quality measure for every route:

- chemtomo: EDS-SIRT (the batched engine), HEBT-SIRT (phantom only: it needs the
  HAADF) and the regularised solver (fused-TV on the phantom, whose data are counts
  and a HAADF; LS-TV on the B volume, whose noise is Gaussian), each at its default
  weight;
- peers: ``scipy`` (SIRT as a careful user writes it: ASTRA's system matrix as
  ``scipy.sparse`` CSR, W and W^T both stored, every slice and channel a column of one
  sparse-dense product per iteration), ``astra`` (ASTRA's CPU SIRT, one slice after
  another, ``MinConstraint 0``), ``svmbir`` (CPU MBIR, qGGMRF prior, its automatic
  regularisation: ``snr_db=30``, ``sharpness=0``) and ``mbirjax`` (MBIR in JAX on the
  CPU, its automatic regularisation). A peer that is not installed is skipped, with
  the reason in the output.

Problems: ``phantom`` is the paper's core-shell Ag-Au slice (``chemtomo.studies.problem``,
dose 1, seed 0; 97 px, 31 tilts, two lines); every route but fused-TV and HEBT sees the
paper's Gaussian-filtered EDS sinograms, fused-TV the raw counts and the HAADF, HEBT the
filtered EDS and the HAADF. Quality: the weight-fraction MSE inside the particle
(``evaluate(...)["mse_fraction_inside"]``, lower is better). ``B`` is workload B of
``bench/speed.py`` (260 slices of 256^2, 15 tilts -72..54 deg, 5 channels, 2 % Gaussian
noise); quality: the relative squared error ``|x - x_true|^2 / |x_true|^2`` over the
measured slices. On B the peers run on a block of ``--slices`` contiguous central
slices (all channels) and their times are extrapolated linearly to 260 slices; chemtomo's
EDS-SIRT is timed on every slice (its columns are independent: its quality on the block is
its quality in the full run), its LS-TV on the block and extrapolated like the peers (plus
the volume's constants, computed once on every slice).

Quality targets. For each route a *trace* gives quality against its iteration count
(SIRT: snapshots of one run; the regularised solvers: snapshots, or one run per count for
svmbir and mbirjax, which have no snapshots). Its *own* level is its best quality (SIRT,
which semi-converges) or its quality at the largest count (the regularised solvers); its
own target is 1.1 x that level. The *common* targets are the SIRT level (1.1 x EDS-SIRT's
best) and the best peer's own target. For each target, each route's time is that of a run
with the smallest iteration count of its trace that reaches it (svmbir and mbirjax: the
fastest of their timed runs that reaches it, their default run included); the ratio is the fastest
peer's time over chemtomo's fastest route. Times exclude one-off set-up (the system
matrix, compiling), which is reported separately.

    python bench/peers.py --problem phantom            # minutes (mbirjax compiles for each partition size)
    python bench/peers.py --problem B --slices 4       # tens of minutes (the MBIR peers)
    python bench/peers.py --quick                      # both problems, reduced, for development

Writes ``bench/results/peers-<problem>.json`` (``peers-quick-<problem>.json`` with --quick).

One file of about 600 lines on purpose: a script run in its own environment (``make
bench-peers``), each peer's adapter (axis order, units, warm-up, stopping rule) beside the
code that times it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402  (bench/speed.py: workload B's geometry and data)

RESULTS = speed.RESULTS
OWN_TOLERANCE = 1.1  # a route's own target: within 10 % of its converged (or best) quality


def log(*args):
    """Print ``args`` to stderr at once (progress messages)."""
    print(*args, file=sys.stderr, flush=True)


@contextlib.contextmanager
def quiet():
    """Silence a peer's own printing (stdout and warnings) while it runs."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def wall(fn, repeat: int = 1):
    """Best wall time of ``repeat`` calls of ``fn`` and the last result."""
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


# ----------------------------------------------------------------------------- problems

class Case:
    """One problem: geometry, operator, data columns, sinograms and the quality measure.

    Attributes
    ----------
    name : str
    geom : TiltGeometry
    op : Operator
        chemtomo's engine for ``geom``.
    b : ndarray (n_rays, K)
        The data every SIRT-type route reconstructs, columns slice-major (slice, channel).
    k : int
        Channels per slice.
    sub : ndarray of int
        The slices the peers run on (all of them for the phantom).
    n_slices : int
        Slices of the whole problem (the extrapolation factor is ``n_slices / len(sub)``).
    """

    def __init__(self, name, geom, op, b, k, sub, n_slices):
        self.name, self.geom, self.op, self.b, self.k = name, geom, op, b, k
        self.sub, self.n_slices = np.asarray(sub), n_slices

    @property
    def sub_columns(self) -> np.ndarray:
        """Column indices of the peers' slices."""
        return (self.sub[:, None] * self.k + np.arange(self.k)).ravel()

    def sinograms(self) -> list[np.ndarray]:
        """Per channel, the peers' slices as a sinogram ``(n_tilts, n_sub, n_pixels)`` in 1/pixel units."""
        g = self.geom
        b = self.b[:, self.sub_columns].reshape(g.n_rays, len(self.sub), self.k)
        return [np.ascontiguousarray(b[:, :, c].reshape(g.n_tilts, g.n_pixels, -1).transpose(0, 2, 1))
                / np.float32(g.pixel_nm) for c in range(self.k)]

    def score(self, x_sub: np.ndarray, factor: str = "f") -> float:
        """Quality of the peers' columns ``(n_vox, len(sub) * k)`` (lower is better)."""
        raise NotImplementedError


class PhantomCase(Case):
    """The paper's core-shell slice: weight-fraction MSE inside the particle."""

    def __init__(self):
        from chemtomo.studies.problem import StudyConfig, make_problem, study_factors

        cfg = StudyConfig()
        self.problem = make_problem(cfg, 1.0, study_factors(cfg), seed=0)
        p = self.problem
        b = np.ascontiguousarray(p.data.eds[:, :, 0].T, dtype=np.float32)  # (n_rays, k): one slice
        super().__init__("phantom", p.geometry, p.W, b, len(p.data.lines), [0], 1)

    def score(self, x_sub, factor="f"):
        """``mse_fraction_inside`` of the maps quantified with ``factor`` ("f" or "z")."""
        from chemtomo.studies.problem import evaluate

        n = self.geom.n_grid
        maps = np.stack([x_sub[:, c].reshape(n, n) for c in range(self.k)])
        try:
            return float(evaluate(self.problem, maps, factor)[0]["mse_fraction_inside"])
        except ValueError as exc:  # no particle edge to threshold at (a very early iterate): not scored
            log(f"  not scored: {exc}")
            return float("inf")


class VolumeCase(Case):
    """Workload B of ``bench/speed.py``: relative squared error against the synthetic truth."""

    def __init__(self, n_sub: int, quick: bool):
        from chemtomo.projector import make_operator

        w = dict(speed.WORKLOADS["quick" if quick else "B"])
        if quick:
            w["n_channels"] = 5
        geom = speed.make_geometry(w)
        op = make_operator(geom)
        op.warmup()
        b = speed.make_data(op, geom, w, np.random.default_rng(2024))
        S = w["n_slices"]
        sub = np.arange(S // 2 - n_sub // 2, S // 2 - n_sub // 2 + n_sub)
        super().__init__("quick-B" if quick else "B", geom, op, b, w["n_channels"], sub, S)
        self.truth = speed.phantom_columns(geom, S, self.k, sub)

    def score(self, x_sub, factor="f"):
        """``|x - x_true|^2 / |x_true|^2`` over the peers' slices."""
        return float(np.sum((x_sub - self.truth) ** 2) / np.sum(self.truth.astype(np.float64) ** 2))


# ----------------------------------------------------------------------------- routes
# Each route returns {"trace": {n: quality}, "time": callable n -> seconds (or None when the
# trace runs were themselves timed: "seconds": {n: s}), "scale": extrapolation factor, ...}.

def chemtomo_sirt(case: Case, grid, repeat):
    """EDS-SIRT on the engine: quality from one run's snapshots, times from runs on every column."""
    from chemtomo.reconstruct import sirt, sirt_weights

    wts = sirt_weights(case.op)
    cols = case.sub_columns
    res = sirt(case.op, np.ascontiguousarray(case.b[:, cols]), max(grid), snapshots=grid, weights=wts)
    trace = {n: case.score(res.snapshots[n]) for n in grid}
    return {"trace": trace, "time": lambda n: wall(lambda: sirt(case.op, case.b, n, weights=wts), repeat)[0],
            "scale": 1.0, "settings": "non-negative SIRT, relaxation 1, zero start, all columns in one batched run"}


def chemtomo_hebt(case: PhantomCase, grid, repeat):
    """HEBT-SIRT (alpha 0.8, the default) on the phantom's filtered EDS and HAADF."""
    from chemtomo.reconstruct import get_method

    m, d = get_method("hebt_sirt"), case.problem.data
    res = m(case.op, d, n_iter=max(grid), snapshots=grid)
    trace = {n: case.score(res.snapshots[n][:, :, 0].T, "z") for n in grid}
    return {"trace": trace, "time": lambda n: wall(lambda: m(case.op, d, n_iter=n), repeat)[0], "scale": 1.0,
            "settings": "alpha 0.8 (default), non-negative SIRT on the stacked system"}


def chemtomo_tv(case: Case, grid, repeat):
    """The regularised solver at its default weight: fused-TV (phantom) or LS-TV (B)."""
    from chemtomo.reconstruct import ChannelData, get_method
    from chemtomo.studies.problem import method_data

    if isinstance(case, PhantomCase):
        m = get_method("fused_tv")
        data_sub = data_all = method_data(case.problem, m)
    else:
        m = get_method("ls_tv")
        g, S, k = case.geom, case.n_slices, case.k
        # the model's data must be >= 0: B's Gaussian noise is clipped at zero for this route only
        eds = np.maximum(np.ascontiguousarray(case.b.reshape(g.n_rays, S, k).transpose(2, 0, 1)), 0)
        data_all = ChannelData([f"c{c}" for c in range(k)], eds)
        data_sub = ChannelData(data_all.lines, np.ascontiguousarray(eds[:, :, case.sub]))
    p = m.params()
    # the volume's constants (noise level, mu -> lam), so the block is solved as in the full run
    const = m.setup(case.op, data_all, p)
    res = m(case.op, data_sub, p, n_iter=max(grid), snapshots=grid, constants=const)
    trace = {}
    for n in grid:
        x = res.snapshots[n]  # (k, n_vox, s) -> (n_vox, s * k), slice-major
        trace[n] = case.score(np.ascontiguousarray(x.transpose(1, 2, 0).reshape(x.shape[1], -1)), res.factor)

    # B: timed on the peers' slices with the volume's constants, extrapolated linearly (the solver is
    # one batched PDHG over the columns; a whole-volume run at 100-300 iterations does not fit this run)
    timed_data = data_all if isinstance(case, PhantomCase) else data_sub
    scale = 1.0 if isinstance(case, PhantomCase) else case.n_slices / len(case.sub)

    out = {}

    def timed(n):
        t_setup, c = wall(lambda: m.setup(case.op, data_all, p))  # once for the volume: not extrapolated
        out.setdefault("constants_seconds", {})[str(n)] = t_setup
        return t_setup + scale * wall(lambda: m(case.op, timed_data, p, n_iter=n, constants=c), repeat)[0]

    out.update(trace=trace, time=timed, scale=scale,
               settings=f"{m.name}, mu {p.mu} (default), coupled TV, PDHG; time includes the constants' set-up"
               + ("" if isinstance(case, PhantomCase) else "; data clipped at zero (the model needs >= 0)"))
    return out


def scipy_sirt(case: Case, grid, repeat):
    """SIRT as a careful scipy user writes it: CSR W and W^T, all columns in one product."""
    from chemtomo.projector.astra_backend import astra_matrix

    t0 = time.perf_counter()
    W = astra_matrix(case.geom)
    Wt = W.T.tocsr()
    rs, cs = np.asarray(W.sum(axis=1)).ravel(), np.asarray(W.sum(axis=0)).ravel()
    R = np.where(rs > 0, 1 / np.where(rs > 0, rs, 1), 0).astype(np.float32)[:, None]
    C = np.where(cs > 0, 1 / np.where(cs > 0, cs, 1), 0).astype(np.float32)[:, None]
    setup = time.perf_counter() - t0
    b = np.ascontiguousarray(case.b[:, case.sub_columns])

    def run(n, keep=()):
        x = np.zeros((W.shape[1], b.shape[1]), np.float32)
        snaps = {}
        for it in range(1, n + 1):
            x += C * (Wt @ (R * (b - W @ x)))
            np.maximum(x, 0, out=x)
            if it in keep:
                snaps[it] = x.copy()
        return snaps

    snaps = run(max(grid), set(grid))
    trace = {n: case.score(snaps[n]) for n in grid}
    scale = case.n_slices / len(case.sub)
    return {"trace": trace, "time": lambda n: wall(lambda: run(n), repeat)[0] * scale, "scale": scale,
            "setup_seconds": setup,
            "settings": "non-negative SIRT; scipy.sparse CSR float32 (ASTRA's strip matrix), one thread"}


def astra_sirt(case: Case, grid, repeat, n_columns: int):
    """ASTRA's CPU SIRT, slice after slice; quality on ``n_columns`` columns, time extrapolated."""
    import astra

    from chemtomo.projector.astra_backend import astra_geometries, create_projector

    g = case.geom
    vol, proj = astra_geometries(g)
    pid = create_projector(g, "strip")
    cols = case.sub_columns[np.linspace(0, len(case.sub_columns) - 1, n_columns).round().astype(int)]

    def run(n, keep=()):
        out = {m: np.zeros((g.n_voxels, len(cols)), np.float32) for m in keep}
        for j, c in enumerate(cols):
            sid = astra.data2d.create("-sino", proj, case.b[:, c].reshape(g.n_tilts, g.n_pixels))
            rid = astra.data2d.create("-vol", vol, 0)
            cfg = astra.astra_dict("SIRT")
            cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid)
            cfg["option"] = {"MinConstraint": 0}
            aid = astra.algorithm.create(cfg)
            done = 0
            for m in sorted(keep) or [n]:  # a second run() continues from the current volume
                astra.algorithm.run(aid, m - done)
                done = m
                if m in out:
                    out[m][:, j] = astra.data2d.get(rid).ravel()
            astra.algorithm.delete(aid)
            astra.data2d.delete([sid, rid])
        return out

    snaps = run(max(grid), set(grid))
    # ASTRA's quality: its columns against the engine's (the same SIRT), scored as the engine's
    from chemtomo.reconstruct import sirt

    eng = sirt(case.op, np.ascontiguousarray(case.b[:, cols]), max(grid), snapshots=grid).snapshots
    agreement = max(float(np.max(np.abs(snaps[n] - eng[n])) / max(np.max(np.abs(eng[n])), 1e-30)) for n in grid)
    scale = case.n_slices * case.k / len(cols)
    return {"trace": None, "agreement_with_engine": agreement, "columns_measured": len(cols), "scale": scale,
            "time": lambda n: wall(lambda: run(n), repeat)[0] * scale,
            "settings": "astra SIRT (CPU), MinConstraint 0, strip projector, one column after another, one core"}


def svmbir_route(case: Case, grid, b_interslice: float, threads: int):
    """The svmbir peer at its automatic regularisation, one timed run per iteration count (and its own stop).

    The call (axes, units) is the package's adapter, :func:`chemtomo.studies.peers.svmbir_reconstruct`,
    which the specimen-suite benchmark uses too; the sinograms are already in 1/pixel units.
    """
    from chemtomo.studies.peers import svmbir_reconstruct  # imports svmbir: ImportError when it is missing

    g = case.geom
    sinos = case.sinograms()
    many = case.name == "phantom"  # the phantom's two lines as two slices, decoupled

    def run(n, stop):
        def go():
            kw = dict(sharpness=0.0, snr_db=30.0, stop_threshold=stop, max_iterations=n, num_threads=threads)
            if many:
                s = np.concatenate(sinos, axis=1)
                r = svmbir_reconstruct(s, g.angles_deg, 1.0, b_interslice=0.0, **kw)
                return [r[i:i + 1] for i in range(case.k)]
            return [svmbir_reconstruct(s, g.angles_deg, 1.0, b_interslice=b_interslice, **kw) for s in sinos]
        with quiet():
            dt, out = wall(go)
        # the adapter's map is chemtomo's (slice, z, x)
        x = np.stack([np.stack([o[s].ravel() for o in out], axis=1) for s in range(len(case.sub))], axis=1)
        return dt, x.reshape(g.n_voxels, -1)

    t0 = time.perf_counter()
    run(1, 0.0)  # builds (and caches on disk) svmbir's system matrix
    setup = time.perf_counter() - t0
    trace, secs = {}, {}
    for n in grid:
        secs[n], x = run(n, 0.0)
        trace[n] = case.score(x)
    dflt_s, x = run(100, 0.02)
    scale = case.n_slices / len(case.sub)
    return {"trace": trace, "seconds": {n: s * scale for n, s in secs.items()}, "scale": scale,
            "setup_seconds": setup,
            "default_run": {"seconds": dflt_s * scale, "quality": case.score(x),
                            "settings": "stop_threshold 0.02 %, max_iterations 100 (svmbir's defaults)"},
            "settings": f"snr_db 30, sharpness 0, p 1.2, q 2, positivity, stop_threshold 0; num_threads {threads}; "
                        + ("two lines as two slices, b_interslice 0" if many else
                           f"one call per channel, slices coupled (b_interslice {b_interslice})")}


def mbirjax_route(case: Case, grid):
    """The mbirjax peer (ParallelBeamModel) at its automatic regularisation, one timed run per count."""
    import mbirjax

    g = case.geom
    ang = np.deg2rad(g.angles_deg)
    sinos = case.sinograms()
    with quiet():
        model = mbirjax.ParallelBeamModel(sinos[0].shape, ang)

    def run(n, stop, start=None, first=0):
        def go():
            np.random.seed(0)  # mbirjax draws its pixel partitions from numpy's global generator
            return [np.asarray(model.recon(s, init_recon=None if start is None else start[c], max_iterations=n,
                                           first_iteration=first, stop_threshold_change_pct=stop,
                                           print_logs=False, logfile_path=None)[0]) for c, s in enumerate(sinos)]
        with quiet():
            dt, out = wall(go)
        # mbirjax's recon (row=z, col=x, slice) is chemtomo's map per slice
        x = np.stack([np.stack([o[:, :, s].ravel() for o in out], axis=1) for s in range(len(case.sub))], axis=1)
        return dt, x.reshape(g.n_voxels, -1), out

    t0 = time.perf_counter()
    run(max(grid), 0.0)  # compiles JAX's kernels for this shape (each iteration's partition size is new)
    setup = time.perf_counter() - t0
    # the trace continues one run (init_recon, first_iteration: the same partition sequence as a fresh
    # run of n iterations); the time to n is the sum of the pieces (a slight overestimate: n / step re-entries)
    trace, secs, done, total, state = {}, {}, 0, 0.0, None
    for n in grid:
        dt, x, state = run(n, 0.0, state, done)
        total += dt
        done = n
        secs[n] = total
        trace[n] = case.score(x)
    dflt_s, x, _ = run(15, 0.2)
    scale = case.n_slices / len(case.sub)
    return {"trace": trace, "seconds": {n: s * scale for n, s in secs.items()}, "scale": scale,
            "setup_seconds": setup,
            "default_run": {"seconds": dflt_s * scale, "quality": case.score(x),
                            "settings": "max_iterations 15, stop_threshold_change_pct 0.2 (mbirjax's defaults)"},
            "timing": "one run continued from count to count (init_recon, first_iteration); times summed",
            "settings": "automatic sigma_y / sigma_x (snr_db 30, sharpness 0), FBP start, one call per channel"}


# ----------------------------------------------------------------------------- run

GRIDS = {  # iteration counts of the traces
    "phantom": {"sirt": (5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500),
                "tv": (25, 50, 75, 100, 150, 200, 300, 500), "mbirjax": (1, 2, 3, 4, 6, 8, 12, 16, 24, 32),
                "svmbir": (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 50, 100)},
    "B": {"sirt": (10, 20, 30, 50, 75, 100, 150, 200), "tv": (25, 50, 75, 100, 150, 200, 300),
          "svmbir": (1, 2, 4, 8, 16), "mbirjax": (1, 2, 4, 8)},
    "quick": {"sirt": (5, 10, 20, 50), "tv": (20, 50), "svmbir": (1, 2, 4), "mbirjax": (1, 2, 4)},
}
CHEMTOMO = ("eds_sirt", "hebt_sirt", "tv")
PEERS = ("scipy_sirt", "astra_sirt", "svmbir", "mbirjax")
CONVERGED_IS_BEST = {"eds_sirt", "hebt_sirt", "scipy_sirt", "astra_sirt"}  # SIRT semi-converges


def _first_reaching(trace: dict, target: float):
    """Smallest iteration count of ``trace`` whose quality is at most ``target`` (None: none)."""
    ok = [n for n in sorted(trace) if trace[n] <= target]
    return ok[0] if ok else None


def run(problem: str, quick: bool, slices: int, repeat: int, threads: int, only=None, grids=None) -> dict:
    """Run every route on one problem and return the JSON-friendly report (see the module docstring).

    ``only``: route names to run (EDS-SIRT always runs: it sets the SIRT level); ``grids``:
    route kind (``sirt``, ``tv``, ``svmbir``, ``mbirjax``) -> iteration counts replacing the
    problem's trace grid for that kind.
    """
    import numba

    numba.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    load = {"start": os.getloadavg()}
    log(f"[{problem}] building the problem ...")
    case = PhantomCase() if problem == "phantom" else VolumeCase(slices, quick)
    grid = {**GRIDS["quick" if quick else ("phantom" if problem == "phantom" else "B")], **(grids or {})}
    routes = {
        "eds_sirt": lambda: chemtomo_sirt(case, grid["sirt"], repeat),
        "hebt_sirt": (lambda: chemtomo_hebt(case, grid["sirt"], repeat)) if problem == "phantom" else None,
        "tv": lambda: chemtomo_tv(case, grid["tv"], repeat),
        "scipy_sirt": lambda: scipy_sirt(case, grid["sirt"], repeat),
        "astra_sirt": lambda: astra_sirt(case, grid["sirt"], repeat, 2),
        "svmbir": lambda: svmbir_route(case, grid["svmbir"], 1.0, threads),
        "mbirjax": lambda: mbirjax_route(case, grid["mbirjax"]),
    }
    out: dict = {}
    for name, fn in routes.items():
        if fn is None or (only and name not in only and name != "eds_sirt"):
            continue
        log(f"[{problem}] {name}: quality trace ...")
        t0 = time.perf_counter()
        try:
            out[name] = fn()
        except ImportError as exc:
            log(f"[{problem}] {name}: SKIPPED, not installed ({exc}); pip install 'chemtomo[bench-peers]'")
            out[name] = {"skipped": f"not installed: {exc}"}
        out[name]["trace_wall_seconds"] = time.perf_counter() - t0
        log(f"[{problem}] {name}: {out[name]['trace_wall_seconds']:.1f} s")
        load[name] = os.getloadavg()
    if "astra_sirt" in out and "trace" in out["astra_sirt"]:
        out["astra_sirt"]["trace"] = dict(out["eds_sirt"]["trace"])  # the same SIRT (agreement recorded)
        out["astra_sirt"]["trace_source"] = "the engine's (same algorithm; see agreement_with_engine)"
    ran = {k: v for k, v in out.items() if "skipped" not in v}
    for name, r in ran.items():
        tr = r["trace"]
        r["own_level"] = min(tr.values()) if name in CONVERGED_IS_BEST else tr[max(tr)]
        if "default_run" in r:  # a peer's converged answer: its longest run or its own stopping rule's
            r["own_level"] = min(r["own_level"], r["default_run"]["quality"])
        r["own_target"] = OWN_TOLERANCE * r["own_level"]
    targets = {"own": None, "sirt_level": OWN_TOLERANCE * ran["eds_sirt"]["own_level"]}
    peer_targets = [ran[p]["own_target"] for p in PEERS if p in ran]
    if peer_targets:
        targets["best_peer_level"] = min(peer_targets)
    memo: dict = {}

    def seconds(name, n):
        r = ran[name]
        if "seconds" in r:
            return r["seconds"][n]
        if (name, n) not in memo:
            log(f"[{problem}] {name}: timing {n} iterations ...")
            memo[name, n] = r["time"](n)
        return memo[name, n]

    report = {}
    for tname, tval in targets.items():
        rows = {}
        for name, r in ran.items():
            target = r["own_target"] if tval is None else tval
            if "seconds" in r:  # timed runs: the fastest that reaches the target, the default run included
                cands = [(r["seconds"][n], n, r["trace"][n]) for n in r["trace"]]
                if "default_run" in r:
                    d = r["default_run"]
                    cands.append((d["seconds"], "default", d["quality"]))
                ok = sorted(c for c in cands if c[2] <= target)
                sec, n, q = ok[0] if ok else (None, None, None)
                rows[name] = {"target": target, "n_iter": n, "quality": q, "seconds": sec}
                continue
            n = _first_reaching(r["trace"], target)
            rows[name] = {"target": target, "n_iter": n, "quality": None if n is None else r["trace"][n],
                          "seconds": None if n is None else seconds(name, n)}
        ct = {k: v for k, v in rows.items() if k in CHEMTOMO and v["seconds"] is not None}
        pe = {k: v for k, v in rows.items() if k in PEERS and v["seconds"] is not None}
        best_c = min(ct, key=lambda k: ct[k]["seconds"]) if ct else None
        best_p = min(pe, key=lambda k: pe[k]["seconds"]) if pe else None
        report[tname] = {"value": tval, "routes": rows, "best_chemtomo": best_c, "baseline_best_peer": best_p,
                         "ratio_best_peer_over_best_chemtomo":
                             pe[best_p]["seconds"] / ct[best_c]["seconds"] if best_c and best_p else None}
    load["end"] = os.getloadavg()
    for r in ran.values():
        r.pop("time", None)
        r["trace"] = {str(n): q if np.isfinite(q) else None for n, q in r["trace"].items()}
        if "seconds" in r:
            r["seconds"] = {str(n): s for n, s in r["seconds"].items()}
    versions = {}
    from importlib.metadata import version

    for dist in ("numpy", "scipy", "numba", "astra-toolbox", "svmbir", "mbirjax", "jax", "jaxlib"):
        with contextlib.suppress(Exception):
            versions[dist] = version(dist)
    with contextlib.suppress(Exception):
        versions["uptime"] = os.popen("uptime").read().strip()
    g = case.geom
    return {
        "problem": case.name, "quick": quick,
        "geometry": {"n_pixels": g.n_pixels, "n_tilts": g.n_tilts, "angles_deg": [float(g.angles_deg[0]),
                     float(g.angles_deg[-1])], "n_slices": case.n_slices, "n_channels": case.k,
                     "peer_slices": [int(s) for s in case.sub]},
        "quality_measure": ("weight-fraction MSE inside the particle (evaluate()['mse_fraction_inside'])"
                            if problem == "phantom" else "|x - x_true|^2 / |x_true|^2 over the peers' slices"),
        "own_tolerance": OWN_TOLERANCE, "targets": report, "routes": out,
        "extrapolation": ("none (one slice)" if problem == "phantom" else
                          f"peers: linear in slices, x {case.n_slices / len(case.sub):g} (ASTRA: in columns); "
                          "chemtomo: measured on every slice"),
        "threads": threads, "machine": {"cpu": platform.processor() or platform.machine(),
                                        "logical_cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": versions, "load_average_1_5_15": {k: list(v) for k, v in load.items()},
        "command": " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
    }


LABEL = {"eds_sirt": "chemtomo EDS-SIRT", "hebt_sirt": "chemtomo HEBT-SIRT", "tv": "chemtomo {tv}",
         "scipy_sirt": "scipy.sparse SIRT", "astra_sirt": "ASTRA CPU SIRT", "svmbir": "svmbir", "mbirjax": "mbirjax"}


def table(paths) -> str:
    """A markdown table of one or more result files (docs/performance.md)."""
    lines = ["| problem | route | own level | n (own) | s (own) | n / s at SIRT level | n / s at best peer's level |",
             "|---|---|---|---|---|---|---|"]
    foot = []
    for path in paths:
        res = json.loads(Path(path).read_text())
        t = res["targets"]
        for name, r in res["routes"].items():
            tv = "fused-TV" if res["problem"] == "phantom" else "LS-TV"
            lab = LABEL[name].format(tv=tv)
            if "skipped" in r:
                lines.append(f"| {res['problem']} | {lab} | skipped: {r['skipped']} | | | | |")
                continue

            def cell(tn, name=name, t=t):
                if tn not in t:
                    return "-"
                row = t[tn]["routes"][name]
                return "not reached" if row["n_iter"] is None else f"{row['n_iter']} / {row['seconds']:.3g}"

            own = t["own"]["routes"][name]
            lines.append(f"| {res['problem']} | {lab} | {r['own_level']:.3g} | {own['n_iter']} | "
                         f"{own['seconds']:.3g} | {cell('sirt_level')} | {cell('best_peer_level')} |")
        la = res["load_average_1_5_15"]
        ratios = ", ".join(f"{k}: {v['baseline_best_peer']} / {v['best_chemtomo']} = "
                           + ("-" if v["ratio_best_peer_over_best_chemtomo"] is None
                              else f"{v['ratio_best_peer_over_best_chemtomo']:.3g}x")
                           for k, v in t.items())
        foot.append(f"- {res['problem']}: best peer / best chemtomo route at each target: {ratios}; load average "
                    f"{la['start'][0]:.2f} at the start, {la['end'][0]:.2f} at the end; `{res['command']}`")
    return "\n".join(lines + [""] + foot) + "\n"


def main(argv=None) -> int:
    """Run the benchmark from the command line, write its JSON result; the exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--problem", choices=("phantom", "B", "both"), default="both")
    p.add_argument("--quick", action="store_true", help="reduced grids and a reduced volume (development)")
    p.add_argument("--slices", type=int, default=4, help="B: contiguous central slices the peers run on")
    p.add_argument("--repeat", type=int, default=2, help="timed runs of the chemtomo, scipy and ASTRA routes")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for every route that has them")
    p.add_argument("--only", nargs="*", default=None,
                   help="run only these routes (and eds_sirt); the result file gets the suffix -only-<routes>")
    p.add_argument("--grid", nargs="*", default=[], metavar="KIND=N,N,...",
                   help="replace a trace grid, e.g. svmbir=16,24,32,48 (kinds: sirt, tv, svmbir, mbirjax)")
    p.add_argument("--table", nargs="+", type=Path, default=None, help="print the markdown table of result files")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = p.parse_args(argv)
    if args.table:
        print(table(args.table), end="")
        return 0
    grids = {}
    for item in args.grid:
        kind, _, counts = item.partition("=")
        if kind not in GRIDS["B"] or not counts:
            p.error(f"--grid wants KIND=N,N,... with KIND one of {sorted(GRIDS['B'])}, got {item!r}")
        grids[kind] = tuple(sorted({int(c) for c in counts.split(",")}))
    suffix = f"-only-{'-'.join(args.only)}" if args.only else ""
    for problem in ("phantom", "B") if args.problem == "both" else (args.problem,):
        res = run(problem, args.quick, args.slices, args.repeat, args.threads, args.only, grids)
        out = RESULTS / f"peers-{'quick-' if args.quick else ''}{problem}{suffix}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(res, indent=1) + "\n")
        tmp.replace(out)
        print(json.dumps(res) if args.json else table([out]), end="\n" if args.json else "")
        log(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
