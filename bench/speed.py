#!/usr/bin/env python
"""Speed of chemtomo's batched engine against ASTRA's CPU SIRT run slice by slice.

One process, one run: it measures this machine's memory bandwidth (a STREAM-like
triad) and float32 peak (OpenBLAS sgemm) on the cores used, builds the engine,
times SIRT over every slice-channel column, times ASTRA's own CPU SIRT on a few
columns (one process; then two processes at once, one per core) and extrapolates
it linearly in columns (and iterations where stated), checks that the engine
agrees with ASTRA on those columns, and writes a JSON file of everything.

    python bench/speed.py --workload B --json          # one JSON object on stdout
    python bench/speed.py --quick --json               # a reduced problem, < 1 minute
    python bench/speed.py --workload B --no-baseline   # the engine and its bounds only (no ASTRA)

Workloads (issue 4): A the paper's phantom (97 px, 31 tilts, 1 slice, 2 channels,
20-500 iterations); B 260 slices of 256^2, 15 tilts -72..54 deg, 5 channels, 100
iterations, and HEBT on it; C 512 slices of 512^2, 60 tilts, 5 channels, 100
iterations (engine measured, never extrapolated).

Definitions (all per SIRT iteration, K = slice-channel columns, float32):
  flops      = K * (4 nnz + 3 n_rays + 3 n_vox)   (a multiply-add each way per nonzero)
  bytes      = matrix bytes + K * 4 * (2 n_vox + 5 n_rays)
               (x read+write, data read, projection read+write, residual write+read)
  bound_seconds           = n_iter * flops / measured sgemm peak
  bandwidth_bound_seconds = n_iter * bytes / measured triad bandwidth
  cpu_ratio_to_arithmetic_bound = engine CPU seconds / (n_iter * flops / sgemm flops per
               CPU second on one core): the ratio to the bound in CPU time, which other
               processes on a shared machine disturb far less than the wall time
Timings are the best of ``--repeat`` runs after a warm-up that compiles every
kernel (HEBT runs alternate with the EDS-only runs they are compared with); the
bandwidth and peak are measured at the start and again at the end and the best
is kept. The machine is shared, so the load average and the CPU seconds of each
run are recorded beside the wall time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"

WORKLOADS = {
    "A": dict(n_pixels=97, pixel_nm=1.5, angles=(-75.0, 75.0, 31), n_slices=1, n_channels=2,
              n_iter=(20, 50, 100, 200, 500), baseline_columns=2, baseline_iter=None, repeat=5),
    "B": dict(n_pixels=256, pixel_nm=2.74, angles=(-72.0, 54.0, 15), n_slices=260, n_channels=5,
              n_iter=(100,), baseline_columns=4, baseline_iter=None, repeat=3),
    "C": dict(n_pixels=512, pixel_nm=1.0, angles=(-75.0, 75.0, 60), n_slices=512, n_channels=5,
              n_iter=(100,), baseline_columns=2, baseline_iter=20, repeat=1),
    "quick": dict(n_pixels=128, pixel_nm=2.74, angles=(-72.0, 54.0, 15), n_slices=32, n_channels=2,
                  n_iter=(20,), baseline_columns=2, baseline_iter=None, repeat=2),
}


def log(*args):
    """Print ``args`` to stderr at once (progress messages)."""
    print(*args, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- machine

def measure_bandwidth(n_threads: int, n: int = 48_000_000, repeat: int = 5) -> float:
    """Triad ``a = b + s c`` over float32 arrays far larger than the caches (bytes/s, best run)."""
    import numba
    from numba import njit, prange

    @njit(parallel=True, fastmath=True)
    def triad(a, b, c, s):
        for i in prange(a.size):
            a[i] = b[i] + s * c[i]

    old = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        a = np.zeros(n, np.float32)
        b = np.ones(n, np.float32)
        c = np.ones(n, np.float32)
        triad(a, b, c, np.float32(2.0))
        best = np.inf
        for _ in range(repeat):
            t = time.perf_counter()
            triad(a, b, c, np.float32(2.0))
            best = min(best, time.perf_counter() - t)
    finally:
        numba.set_num_threads(old)
    return 3 * 4 * n / best


def measure_peak_flops(n_threads: int, n: int = 3072, repeat: int = 3, cpu_time: bool = False) -> float:
    """float32 matrix product (OpenBLAS sgemm) on ``n_threads`` cores (flop/s, best run).

    With ``cpu_time`` the rate is per CPU second of the process (use one thread): on a
    shared machine it does not fall when other processes take the core away.
    """
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    with threadpool_limits(limits=n_threads, user_api="blas"):
        a @ b
        best = np.inf
        clock = time.process_time if cpu_time else time.perf_counter
        for _ in range(repeat):
            t = clock()
            a @ b
            best = min(best, clock() - t)
    return 2.0 * n**3 / best


class RssSampler:
    """Peak resident memory of this process while a block runs (psutil, every 20 ms)."""

    def __init__(self, period_s: float = 0.02):
        import psutil

        self._proc, self._period = psutil.Process(), period_s
        self.peak = 0

    def __enter__(self):
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(self._period)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def timed(fn, repeat: int):
    """Best wall time of ``repeat`` calls, with the CPU seconds of that call and the last result."""
    best, cpu, out = np.inf, np.nan, None
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if dt < best:
            best, cpu = dt, dc
    return best, cpu, out


# ----------------------------------------------------------------------------- data

def make_geometry(w: dict):
    """The :class:`TiltGeometry` of workload ``w``: ``w["angles"]`` = (first deg, last deg, count), pixels, nm."""
    from chemtomo.geometry import TiltGeometry

    lo, hi, n = w["angles"]
    return TiltGeometry(np.linspace(lo, hi, n), w["n_pixels"], w["pixel_nm"])


def phantom_columns(geom, n_slices: int, n_channels: int, slices) -> np.ndarray:
    """Synthetic volume, pixels x (slice, channel) for ``slices``: a core-shell ellipsoid.

    Slice ``s`` cuts the paper's 2-D core-shell particle scaled by the ellipsoid's
    cross-section; channel ``c`` mixes its Ag and Au maps as ``a_c Ag + (1-a_c) Au``.
    Column order: slice-major (slice, channel).
    """
    from chemtomo.simulate import core_shell_phantom

    a = np.linspace(0.1, 0.9, n_channels)
    out = np.zeros((geom.n_voxels, len(slices) * n_channels), np.float32)
    px = 1.5 * 97 / geom.n_grid
    for i, s in enumerate(slices):
        h = (s + 0.5) / n_slices * 2 - 1
        f = np.sqrt(max(0.0, 1 - (h / 0.95) ** 2))
        if f < 0.05:
            continue
        ph = core_shell_phantom(geom.n_grid, px, outer_semi_axes_nm=(54 * f, 46 * f),
                                core_radius_nm=27 * f, core_offset_nm=(6 * f, -5 * f))
        ag, au = ph.mass[0].ravel(), ph.mass[1].ravel()
        for c in range(n_channels):
            out[:, i * n_channels + c] = a[c] * ag + (1 - a[c]) * au
    return out


def make_data(op, geom, w: dict, rng, noise: float = 0.02, chunk: int = 256) -> np.ndarray:
    """Rays x (slice, channel) data ``W x + noise`` (Gaussian, ``noise`` of the maximum), in chunks."""
    S, k = w["n_slices"], w["n_channels"]
    b = np.empty((geom.n_rays, S * k), np.float32)
    per = max(1, chunk // k)
    for s0 in range(0, S, per):
        sl = list(range(s0, min(S, s0 + per)))
        b[:, s0 * k:(s0 + len(sl)) * k] = op.forward(phantom_columns(geom, S, k, sl))
    sigma = noise * float(b.max())
    for j0 in range(0, b.shape[1], chunk):
        blk = b[:, j0:j0 + chunk]
        blk += rng.normal(0.0, sigma, blk.shape).astype(np.float32)
    return b


# ----------------------------------------------------------------------------- ASTRA baseline

def astra_sirt_columns(geom_key: dict, kind: str, sinos: np.ndarray, n_iter: int):
    """ASTRA's CPU SIRT (MinConstraint 0), one column after another; (seconds, results)."""
    import astra

    from chemtomo.geometry import TiltGeometry
    from chemtomo.projector.astra_backend import astra_geometries, create_projector

    geom = TiltGeometry(geom_key["angles_deg"], geom_key["n_pixels"], geom_key["pixel_nm"],
                        geom_key["n_grid"], geom_key["grid_pixel_nm"])
    vol, proj = astra_geometries(geom)
    pid = create_projector(geom, kind)
    out = np.empty((geom.n_voxels, sinos.shape[1]), np.float32)
    t0 = time.perf_counter()
    for j in range(sinos.shape[1]):
        sid = astra.data2d.create("-sino", proj, sinos[:, j].reshape(geom.n_tilts, geom.n_pixels))
        rid = astra.data2d.create("-vol", vol, 0)
        cfg = astra.astra_dict("SIRT")
        cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid)
        cfg["option"] = {"MinConstraint": 0}
        aid = astra.algorithm.create(cfg)
        astra.algorithm.run(aid, n_iter)
        out[:, j] = astra.data2d.get(rid).ravel()
        astra.algorithm.delete(aid)
        astra.data2d.delete([sid, rid])
    dt = time.perf_counter() - t0
    astra.projector.delete(pid)
    return dt, out


def _astra_worker(geom_key, kind, sinos, n_iter, barrier, queue):
    import astra  # noqa: F401 - import before the barrier, outside the timing

    barrier.wait()
    t0 = time.time()
    dt, _ = astra_sirt_columns(geom_key, kind, sinos, n_iter)
    queue.put((t0, t0 + dt))


def astra_two_cores(geom_key: dict, kind: str, sinos: np.ndarray, n_iter: int) -> float:
    """Wall time of ASTRA SIRT on ``sinos`` split over two processes started together."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    halves = np.array_split(np.arange(sinos.shape[1]), 2)
    procs = [ctx.Process(target=_astra_worker,
                         args=(geom_key, kind, np.ascontiguousarray(sinos[:, h]), n_iter, barrier, queue))
             for h in halves]
    for p in procs:
        p.start()
    spans = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return max(e for _, e in spans) - min(s for s, _ in spans)


# ----------------------------------------------------------------------------- run

def blas_info() -> dict:
    """The BLAS that measures the float32 peak: library, version and the kernel family it runs.

    OpenBLAS picks its kernels by CPU: on a CPU it does not know it may run older
    (e.g. Haswell, AVX2) kernels even where AVX-512 is present, which halves the peak it
    measures, and so the arithmetic bound, against the engine's AVX-512 code.
    """
    from threadpoolctl import threadpool_info

    for lib in threadpool_info():
        if lib.get("user_api") == "blas":
            return {k: lib.get(k) for k in ("internal_api", "version", "architecture")}
    return {}


def run(workload: str, kind: str, repeat: int | None, hebt: bool, n_threads: int,
        baseline: bool = True) -> dict:
    """Time the engine on one workload and return the JSON-friendly report.

    Measures the machine (triad bandwidth, float32 peak), the engine's build
    and warm-up, SIRT at each of the workload's iteration counts (best of
    ``repeat``), HEBT-SIRT at the last count when ``hebt``, and the baseline.

    Parameters
    ----------
    workload : str
        A key of ``WORKLOADS``.
    kind : {"strip", "linear", "line"}
        Projector model.
    repeat : int or None
        Timed runs of the engine (best kept); None: the workload's.
    hebt : bool
        Also time HEBT-SIRT.
    n_threads : int
        Numba threads for the engine.
    baseline : bool
        Also time ASTRA's SIRT and check the agreement (False: the engine and its bounds only).

    Returns
    -------
    dict
    """
    import numba

    from chemtomo.projector import make_operator
    from chemtomo.projector.batched import _has_avx512
    from chemtomo.reconstruct import hebt_sirt, sirt, sirt_weights

    numba.set_num_threads(n_threads)
    w = WORKLOADS[workload]
    repeat = repeat or w["repeat"]
    geom = make_geometry(w)
    S, k = w["n_slices"], w["n_channels"]
    K = S * k
    rng = np.random.default_rng(2024)
    load = [os.getloadavg()]
    res: dict = {
        "workload": workload, "kind": kind, "n_threads": n_threads,
        "geometry": {"n_pixels": geom.n_pixels, "n_tilts": geom.n_tilts, "n_grid": geom.n_grid,
                     "angles_deg": [float(geom.angles_deg[0]), float(geom.angles_deg[-1])],
                     "n_slices": S, "n_channels": k, "columns": K},
        "machine": {"cpu": platform.processor() or platform.machine(), "logical_cpus": os.cpu_count(),
                    "python": platform.python_version(), "numba": numba.__version__},
        "command": " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
    }

    log(f"[{workload}] measuring memory bandwidth and float32 peak on {n_threads} threads ...")
    bw = measure_bandwidth(n_threads)
    peak = measure_peak_flops(n_threads)
    peak_cpu = measure_peak_flops(1, cpu_time=True)
    res["machine"].update(triad_bandwidth_bytes_per_s=bw, sgemm_peak_flops_per_s=peak,
                          sgemm_peak_flops_per_cpu_second=peak_cpu,
                          blas=blas_info(), engine_avx512=_has_avx512())

    log(f"[{workload}] building the engine ({kind}) ...")
    t0 = time.perf_counter()
    op = make_operator(geom, kind=kind)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    op.warmup()  # compile / load every kernel before any timing
    warm_s = time.perf_counter() - t0
    shared, single = op.n_entries
    res["engine"] = {"build_seconds": build_s, "warmup_seconds": warm_s, "nnz": op.nnz,
                     "group": op.group, "fill": op.fill, "shared_entries": shared,
                     "single_entries": single, "matrix_bytes": op.matrix_bytes,
                     "block_width": op._block_width(K)}

    log(f"[{workload}] data: {K} columns of {geom.n_rays} rays ...")
    b = make_data(op, geom, w, rng)
    weights = sirt_weights(op)

    flops_it = K * op.flops_per_column()
    executed_it = K * (4 * (shared * op.group + single) + 3 * geom.n_rays + 3 * geom.n_voxels)
    bytes_it = op.matrix_bytes + K * 4 * (2 * geom.n_voxels + 5 * geom.n_rays)
    res["per_iteration"] = {"flops": flops_it, "executed_flops": executed_it, "bytes": bytes_it,
                            "flops_per_byte": flops_it / bytes_it}

    # ---- engine, every column, each iteration count; HEBT interleaved with the EDS-only
    # run it is compared with (the machine is shared: alternating keeps the load alike)
    hebt_case = None
    if hebt:
        b3 = b.reshape(geom.n_rays, S, k)
        eds = [np.ascontiguousarray(b3[:, :, c]) for c in range(k)]
        r_ratio = np.linspace(0.5, 1.5, k)
        haadf = np.ascontiguousarray(sum(rc * e for rc, e in zip(r_ratio, eds, strict=True)), dtype=np.float32)
        del b3
        hebt_case = (eds, r_ratio, haadf)
    runs = {}
    x_full = None
    n_main = w["n_iter"][-1]
    for n_iter in w["n_iter"]:
        with_hebt = hebt_case is not None and n_iter == n_main
        log(f"[{workload}] engine: SIRT {n_iter} iterations x {K} columns"
            + (" and HEBT" if with_hebt else "") + f", best of {repeat} ...")
        best = {"eds": (np.inf, np.nan, 0), "hebt": (np.inf, np.nan, 0)}
        for _ in range(repeat):
            with RssSampler() as mem:
                wall, cpu, out = timed(lambda n_iter=n_iter: sirt(op, b, n_iter, weights=weights), 1)
            if wall < best["eds"][0]:
                best["eds"] = (wall, cpu, mem.peak)
            x_full = out.x
            del out
            if with_hebt:
                eds, r_ratio, haadf = hebt_case
                with RssSampler() as mem:
                    wall, cpu, out = timed(lambda haadf=haadf, eds=eds, r_ratio=r_ratio, n_iter=n_iter:
                                           hebt_sirt(op, haadf, eds, r_ratio, 0.8, n_iter), 1)
                assert out.info["engine"] == "batched-fused"
                del out
                if wall < best["hebt"][0]:
                    best["hebt"] = (wall, cpu, mem.peak)
        wall, cpu, peak_rss = best["eds"]
        runs[n_iter] = {"engine_seconds": wall, "engine_cpu_seconds": cpu,
                        "engine_peak_rss_bytes": peak_rss,
                        "achieved_flops_per_s": n_iter * flops_it / wall}
        if with_hebt:
            hw, hc, hp = best["hebt"]
            res["hebt"] = {"engine_seconds": hw, "engine_cpu_seconds": hc, "engine_peak_rss_bytes": hp,
                           "ratio_to_eds_only": hw / wall, "alpha": 0.8,
                           "r": [float(v) for v in hebt_case[1]], "columns": K,
                           "timing": "best of runs alternating with the EDS-only runs"}
        load.append(os.getloadavg())

    # ---- ASTRA baseline on a subset of columns, same data
    n_base = w["baseline_iter"] or n_main
    cols = np.linspace(0, K - 1, w["baseline_columns"]).round().astype(int)
    sinos = np.ascontiguousarray(b[:, cols])
    key = geom.key()
    n_rep = 1 if workload == "C" else 2
    t1, t2, ref = np.nan, np.nan, None
    if baseline:
        log(f"[{workload}] ASTRA SIRT ({kind}) on {len(cols)} columns x {n_base} iterations, one core, "
            f"then two processes at once; best of {n_rep} ...")
        t1, t2 = np.inf, np.inf
    for _ in range(n_rep if baseline else 0):
        dt, ref = astra_sirt_columns(key, kind, sinos, n_base)
        t1 = min(t1, dt)
        t2 = min(t2, astra_two_cores(key, kind, sinos, n_base))
    load.append(os.getloadavg())
    log(f"[{workload}] measuring bandwidth and peak again (the best of both measurements is used) ...")
    bw = max(bw, measure_bandwidth(n_threads))
    peak = max(peak, measure_peak_flops(n_threads))
    peak_cpu = max(peak_cpu, measure_peak_flops(1, cpu_time=True))
    res["machine"].update(triad_bandwidth_bytes_per_s=bw, sgemm_peak_flops_per_s=peak,
                          sgemm_peak_flops_per_cpu_second=peak_cpu)
    for n, r in runs.items():
        r["bound_seconds"] = n * flops_it / peak
        r["bandwidth_bound_seconds"] = n * bytes_it / bw
    scale_cols = K / len(cols)
    # per iteration count, ASTRA's time is linear in iterations (one projection pair each)
    astra_one = {n: t1 * scale_cols * n / n_base for n in w["n_iter"]}
    astra_two = {n: t2 * scale_cols * n / n_base for n in w["n_iter"]}
    sub = sirt(op, sinos, n_base, weights=(weights[0], weights[1])).x
    agreement = None if ref is None else float(max(
        np.max(np.abs(sub[:, j] - ref[:, j])) / np.max(np.abs(ref[:, j])) for j in range(len(cols))))
    res["baseline"] = None if not baseline else {
        "columns_measured": [int(c) for c in cols], "iterations_measured": n_base,
        "one_core_seconds_measured": t1, "two_cores_seconds_measured": t2,
        "extrapolation": f"linear: x {scale_cols:g} in columns" + (
            f", x {n_main / n_base:g} in iterations" if n_base != n_main else ""),
    }
    res["subset_equals_full_run"] = bool(n_base == n_main and np.array_equal(sub, x_full[:, cols]))
    for n, r in runs.items():
        r["astra_seconds"] = astra_two[n]
        r["astra_one_core_seconds"] = astra_one[n]
        r["speedup_vs_astra"] = astra_two[n] / r["engine_seconds"] if baseline else None
        r["speedup_vs_astra_one_core"] = astra_one[n] / r["engine_seconds"] if baseline else None
        if not baseline:
            r["astra_seconds"] = r["astra_one_core_seconds"] = None
        r["fraction_of_arithmetic_bound"] = r["bound_seconds"] / r["engine_seconds"]
        # the same ratio in CPU seconds (engine's over sgemm's on one core): robust to a busy machine
        r["bound_cpu_seconds"] = n * flops_it / peak_cpu
        r["cpu_ratio_to_arithmetic_bound"] = r["engine_cpu_seconds"] / r["bound_cpu_seconds"]
    del x_full

    main = runs[n_main]
    res.update({
        "n_iter": n_main, "engine_seconds": main["engine_seconds"],
        "engine_cpu_seconds": main["engine_cpu_seconds"], "astra_seconds": main["astra_seconds"],
        "astra_one_core_seconds": main["astra_one_core_seconds"],
        "speedup_vs_astra": main["speedup_vs_astra"], "bound_seconds": main["bound_seconds"],
        "fraction_of_arithmetic_bound": main["fraction_of_arithmetic_bound"],
        "cpu_ratio_to_arithmetic_bound": main["cpu_ratio_to_arithmetic_bound"],
        "bandwidth_bound_seconds": main["bandwidth_bound_seconds"], "agreement": agreement,
        "engine_peak_rss_bytes": main["engine_peak_rss_bytes"],
        "engine_working_set_bytes": op.sirt_bytes(K),
        "process_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "runs": {str(n): r for n, r in runs.items()},
        "load_average_1_5_15": [list(v) for v in load],
    })
    return res


def main(argv=None) -> int:
    """Run the benchmark from the command line, write its JSON result; the exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", choices=sorted(WORKLOADS), default="B")
    p.add_argument("--quick", action="store_true", help="the reduced problem (same as --workload quick)")
    p.add_argument("--kind", choices=("strip", "linear", "line"), default="strip",
                   help="ASTRA projector model for both the engine and the baseline (default strip)")
    p.add_argument("--repeat", type=int, default=None, help="timed runs of the engine (best kept)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for the engine")
    p.add_argument("--no-hebt", action="store_true", help="skip the HEBT timing")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip ASTRA's SIRT (and the agreement check): the engine and its bounds only")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--out", type=Path, default=None,
                   help="result file (default bench/results/speed-<workload>-<kind>.json)")
    args = p.parse_args(argv)
    workload = "quick" if args.quick else args.workload
    hebt = not args.no_hebt and workload != "C"
    res = run(workload, args.kind, args.repeat, hebt, args.threads, baseline=not args.no_baseline)
    out = args.out or RESULTS / f"speed-{workload}-{args.kind}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(res, indent=1) + "\n")
    tmp.replace(out)
    if args.json:
        print(json.dumps(res))
    else:
        keys = ("engine_seconds", "astra_seconds", "speedup_vs_astra", "bound_seconds",
                "bandwidth_bound_seconds", "agreement", "engine_peak_rss_bytes")
        for key in keys + ("fraction_of_arithmetic_bound", "cpu_ratio_to_arithmetic_bound"):
            print(f"{key:>26}: " + ("-" if res[key] is None else f"{res[key]:.4g}"))
        if "hebt" in res:
            print(f"{'hebt_ratio_to_eds_only':>26}: {res['hebt']['ratio_to_eds_only']:.3f}")
        print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
