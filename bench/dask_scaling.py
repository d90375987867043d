"""Scaling of the chunked volume reconstruction: one process, a Dask LocalCluster, pinned processes.

A synthetic tilt series of 512 slices of 256 x 256 with 5 EDS lines and HAADF
(31 tilts, -75..75 deg) is reconstructed by HEBT-SIRT in chunks of slices with
the operator make_operator builds by default (no ASTRA in the loop), in:

- ``one_process``   the in-process runner (what ``chemtomo reconstruct`` does by default);
- ``local_cluster`` ``Runner("local:2")``: a LocalCluster of 2 single-threaded workers;
- ``pinned``        2 plain processes, each pinned to one core, each doing half of the chunks;
- ``overhead``      Dask's cost per chunk: one LocalCluster worker, one chunk at a time,
                    client round trip (scatter input, run, gather maps) minus compute time.

Every configuration reconstructs the same chunks from the same filtered series
and response ratios; the maps are checked to be bit-identical across them. The
driving process then writes the chunks to a Zarr store and runs the chunked
quantification, to state those costs too.

    python bench/dask_scaling.py                       # writes bench/results/dask_scaling.json
    python bench/dask_scaling.py --slices 64 --iterations 3 --out /tmp/x.json   # a smoke run

Timings on a shared machine are disturbed by other work: each configuration is
repeated (``--repeat``) and the best taken, and the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "dask_scaling.json"


def load() -> list[float]:
    """The 1-, 5- and 15-minute load averages of the machine, rounded to 0.01."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its finished children."""
    import resource

    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def synthetic_series(n_slices: int, n_pixels: int, n_lines: int, seed: int = 0):
    """A particle of ``n_lines`` phases (concentric shells and off-centre blobs) changing along the axis."""
    from chemtomo.geometry import TiltGeometry, columns_to_sinogram, volume_to_columns
    from chemtomo.projector import make_operator
    from chemtomo.tiltseries import TiltSeries

    rng = np.random.default_rng(seed)
    angles = np.arange(-75.0, 75.1, 5.0)
    g = TiltGeometry(angles, n_pixels, 1.0)
    W = make_operator(g)
    yy, xx = (np.mgrid[:n_pixels, :n_pixels] - (n_pixels - 1) / 2) / n_pixels
    t = np.linspace(0, 1, n_slices)[:, None, None]
    r = np.hypot(yy, xx)[None]
    radius = 0.25 + 0.1 * np.sin(2 * np.pi * t)
    eds = {}
    for i in range(n_lines):
        lo, hi = radius * i / n_lines, radius * (i + 1) / n_lines
        phase = ((r >= lo) & (r < hi)).astype(np.float32) * (2.0 + i)
        cy, cx = 0.15 * np.cos(2 * np.pi * i / n_lines), 0.15 * np.sin(2 * np.pi * i / n_lines)
        phase += 3.0 * (np.hypot(yy - cy, xx - cx)[None] < 0.04 + 0.02 * t)
        proj = W.forward(volume_to_columns(phase.astype(np.float32)))
        eds[f"L{i}"] = rng.poisson(columns_to_sinogram(proj, g.n_tilts, n_pixels)).astype(np.float32)
    haadf = sum((3.0 + 2 * i) * eds[f"L{i}"] for i in range(n_lines))
    return TiltSeries(angles, 1.0, eds, rng.poisson(haadf).astype(np.float32))


def prepare(args):
    """Filtered series and response ratios, as reconstruct_series computes them before the chunks."""
    from chemtomo.pipeline.volume import prepare_series
    from chemtomo.reconstruct import estimate_response_ratios

    t0 = time.perf_counter()
    series = synthetic_series(args.slices, args.pixels, args.lines)
    t1 = time.perf_counter()
    prepared = prepare_series(series, 0.8, "image")
    rr = estimate_response_ratios(prepared.haadf, dict(prepared.eds))
    t2 = time.perf_counter()
    return prepared, rr, {"simulate_s": t1 - t0, "filter_and_response_ratios_s": t2 - t1}


def spec_for(prepared, args, threads=None):
    """The HEBT-SIRT :class:`ChunkSpec` of the bench (``args.iterations``, ``args.backend``, ``threads``)."""
    from chemtomo.pipeline.distributed import ChunkSpec

    return ChunkSpec(prepared.geometry().key(), args.backend, "hebt_sirt", {"n_iter": args.iterations}, threads=threads)


def chunks_of(args):
    """The chunks ``(index, first slice, end slice)`` of ``args.chunk`` slices covering ``args.slices``."""
    return [(i, a, min(a + args.chunk, args.slices)) for i, a in enumerate(range(0, args.slices, args.chunk))]


def run_runner(scheduler, prepared, rr, args):
    """Chunks through a Runner; returns timings and the maps."""
    from chemtomo.pipeline.distributed import Runner, release_operator
    from chemtomo.pipeline.volume import series_to_channel_data

    lines = prepared.lines
    maps = np.zeros((len(lines), args.slices, args.pixels, args.pixels), np.float32)
    outs = []

    def keep(i, a, b, out):
        maps[:, a:b] = out.maps
        outs.append({"index": i, "seconds": out.seconds, "pid": out.pid, "max_rss_bytes": out.max_rss_bytes})

    release_operator()
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    with Runner(scheduler, memory_budget_bytes=args.memory_gb * 2**30) as runner:
        t1 = time.perf_counter()
        runner.run(spec_for(prepared, args), chunks_of(args),
                   lambda a, b: series_to_channel_data(prepared, lines, a, b, rr.r), keep)
        t2 = time.perf_counter()
        slots, threads, kind = runner.slots, runner.threads, runner.describe()
    t3 = time.perf_counter()
    release_operator()
    return {
        "runner": kind, "slots": slots, "threads_per_task": threads,
        "startup_s": t1 - t0, "chunks_s": t2 - t1, "shutdown_s": t3 - t2, "total_s": t3 - t0,
        "cpu_s": cpu_seconds() - cpu0,
        "compute_s_sum": sum(o["seconds"] for o in outs), "max_rss_bytes_per_process":
            {str(pid): max(o["max_rss_bytes"] for o in outs if o["pid"] == pid) for pid in {o["pid"] for o in outs}},
    }, maps


def run_pinned(path: Path, args):
    """2 processes, each pinned to one core, each running half of the chunks in process (no Dask)."""
    cores = sorted(os.sched_getaffinity(0))[: args.workers]
    chunks = chunks_of(args)
    procs = []
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    for w, core in enumerate(cores):
        mine = [c for j, c in enumerate(chunks) if j % len(cores) == w]
        cmd = [sys.executable, __file__, "--pinned-worker", str(core), "--data", str(path),
               "--chunk-list", json.dumps(mine), "--iterations", str(args.iterations), "--backend", args.backend]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    reports = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode:
            raise RuntimeError(f"pinned worker failed ({p.returncode})")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    maps = np.zeros((args.lines, args.slices, args.pixels, args.pixels), np.float32)
    for rep in reports:
        for (_, a, b), name in zip(rep["chunks"], rep["maps"], strict=True):
            maps[:, a:b] = np.load(name)
            os.unlink(name)
    return {
        "runner": f"{len(cores)} processes pinned to cores {cores}", "slots": len(cores), "threads_per_task": 1,
        "wall_s_including_start": wall, "cpu_s": cpu, "chunks_s": max(r["chunks_s"] for r in reports),
        "startup_s": max(r["startup_s"] for r in reports), "compute_s_sum": sum(r["compute_s_sum"] for r in reports),
        "max_rss_bytes_per_process": {str(r["pid"]): r["max_rss_bytes"] for r in reports},
    }, maps


def pinned_worker(core: int, data: Path, chunk_list: list, iterations: int, backend: str) -> None:
    """One pinned process: reconstruct ``chunk_list`` on ``core`` and print its report as one JSON line.

    Each chunk's maps go to a temporary ``.npy`` file named in the report
    (the parent loads and removes them).

    Parameters
    ----------
    core : int
        The CPU core to pin this process to.
    data : Path
        The ``.npy`` stack of the filtered EDS sinograms and HAADF (with its
        ``.json`` companion: lines, response ratios, geometry key).
    chunk_list : list of (int, int, int)
        The chunks ``(index, first slice, end slice)`` to reconstruct.
    iterations : int
        HEBT-SIRT iterations.
    backend : str
        Operator backend.
    """
    t_start = time.perf_counter()
    os.sched_setaffinity(0, {core})
    from chemtomo.pipeline.distributed import ChunkSpec, reconstruct_chunk
    from chemtomo.reconstruct import ChannelData

    z = np.load(data, mmap_mode="r", allow_pickle=False)
    meta = json.loads(Path(str(data) + ".json").read_text())
    lines, r = meta["lines"], np.asarray(meta["r"])
    spec = ChunkSpec(meta["geometry"], backend, "hebt_sirt", {"n_iter": iterations}, threads=1)
    t0 = time.perf_counter()  # the projector is built in the first chunk, as in the other configurations
    files, compute = [], 0.0
    for _, a, b in chunk_list:
        from chemtomo.geometry import sinogram_to_columns

        eds = np.stack([sinogram_to_columns(np.asarray(z[i, :, a:b])) for i in range(len(lines))])
        hd = sinogram_to_columns(np.asarray(z[len(lines), :, a:b]))
        out = reconstruct_chunk(spec, ChannelData(lines, eds, hd, r))
        compute += out.seconds
        fd, name = tempfile.mkstemp(suffix=".npy")  # hand each chunk on at once, as a worker does
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, out.maps)
        files.append(name)
        del out
    t1 = time.perf_counter()
    from chemtomo.pipeline.distributed import _max_rss

    print(json.dumps({"chunks": chunk_list, "maps": files, "chunks_s": t1 - t0, "startup_s": t0 - t_start,
                      "compute_s_sum": compute, "pid": os.getpid(), "cpu_s": time.process_time(),
                      "max_rss_bytes": _max_rss()}))


def dask_overhead(prepared, rr, args, n: int = 4) -> dict:
    """Per-chunk cost of going through Dask: one worker, one chunk at a time (no overlap)."""
    import pickle

    from distributed import Client, LocalCluster

    from chemtomo.pipeline.distributed import reconstruct_chunk
    from chemtomo.pipeline.volume import series_to_channel_data

    spec = spec_for(prepared, args, threads=1)
    rows = []
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0",
                      memory_limit=int(args.memory_gb * 2**30)) as cluster, Client(cluster) as client:
        client.submit(reconstruct_chunk, spec, series_to_channel_data(prepared, prepared.lines, 0, 1, rr.r),
                      pure=False).result()  # warm: imports and the projector, as the first chunk of a run pays
        for _, a, b in chunks_of(args)[:n]:
            data = series_to_channel_data(prepared, prepared.lines, a, b, rr.r)
            t0 = time.perf_counter()
            fut = client.submit(reconstruct_chunk, spec, client.scatter(data, hash=False), pure=False)
            out = fut.result()
            rt = time.perf_counter() - t0
            rows.append({"round_trip_s": rt, "compute_s": out.seconds, "overhead_s": rt - out.seconds,
                         "input_bytes": len(pickle.dumps(data, protocol=5)), "output_bytes": out.maps.nbytes})
            del fut
    return {"chunks": rows, "mean_overhead_s": float(np.mean([r["overhead_s"] for r in rows])),
            "mean_compute_s": float(np.mean([r["compute_s"] for r in rows]))}


def store_costs(maps, prepared, args) -> dict:
    """Driver-side costs of a store: writing the chunks, verifying them on resume, chunked quantification."""
    from chemtomo.pipeline.store import Fingerprint, VolumeStore
    from chemtomo.pipeline.store_quantify import quantify_store

    with tempfile.TemporaryDirectory() as tmp:
        fp = Fingerprint({"bench": True}, {})
        st = VolumeStore.open(Path(tmp) / "v.zarr", fp, lines=prepared.lines, n_slices=args.slices,
                              n_grid=args.pixels, chunk_slices=args.chunk, resume=False)
        t0 = time.perf_counter()
        for i, (a, b) in enumerate(st.chunks):
            st.write_chunk(i, maps[:, a:b], factor="z")
        t1 = time.perf_counter()
        good, bad = st.verify()
        t2 = time.perf_counter()
        th = quantify_store(st, np.ones(len(prepared.lines)), np.linspace(50, 200, len(prepared.lines)),
                            prepared.lines, "esf")
        t3 = time.perf_counter()
        size = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
    return {"write_chunks_s": t1 - t0, "verify_s": t2 - t1, "quantify_s": t3 - t2, "verified": len(good),
            "bad": len(bad), "threshold": th.as_dict(), "store_bytes": size}


def main(argv=None) -> int:
    """Run the benchmark (or, with the hidden ``--pinned-worker``, one pinned worker); the exit code."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slices", type=int, default=512)
    ap.add_argument("--pixels", type=int, default=256)
    ap.add_argument("--lines", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--chunk", type=int, default=32, help="slices per chunk (default 32: 16 chunks)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each configuration; the best is kept")
    ap.add_argument("--memory-gb", type=float, default=6.0, help="memory budget of the run (all workers)")
    ap.add_argument("--backend", default="batched", help="operator backend (default: the batched engine)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--pinned-worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--chunk-list", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.pinned_worker is not None:
        pinned_worker(args.pinned_worker, args.data, json.loads(args.chunk_list), args.iterations, args.backend)
        return 0

    import chemtomo
    from chemtomo.pipeline.memory import WORKER_BASELINE_BYTES, chunk_bytes, operator_bytes

    report = {
        "benchmark": "dask_scaling", "chemtomo": chemtomo.__version__, "python": platform.python_version(),
        "machine": {"cores": len(os.sched_getaffinity(0)), "platform": platform.platform(),
                    "memory_gb": round(__import__("psutil").virtual_memory().total / 2**30, 1),
                    "load_at_start": load()},
        "problem": {"slices": args.slices, "pixels": args.pixels, "lines": args.lines, "tilts": 31,
                    "method": "hebt_sirt", "iterations": args.iterations, "chunk_slices": args.chunk,
                    "chunks": len(chunks_of(args)), "backend": args.backend},
        "configs": {},
    }
    prepared, rr, prep_t = prepare(args)
    g = prepared.geometry()
    report["prepare"] = prep_t
    report["memory_model"] = {
        "chunk_bytes": chunk_bytes(g, args.lines, args.chunk, "hebt_sirt", args.backend),
        "operator_bytes": operator_bytes(g, args.backend),
        "worker_baseline_bytes": WORKER_BASELINE_BYTES,
        "note": "stated peak per worker = baseline + operator + one chunk; measured: max_rss_bytes_per_process "
                "(VmHWM). The one_process figure is the bench driver, which also holds the series and two "
                "copies of the volume for the comparison",
    }
    print(f"prepared {args.slices} slices x {args.pixels}^2 x {args.lines} lines in "
          f"{sum(prep_t.values()):.1f} s; load {load()}", file=sys.stderr)

    # the pinned workers read the prepared stacks from one file (memory-mapped)
    tmpdir = tempfile.mkdtemp()
    data = Path(tmpdir) / "stacks.npy"
    np.save(data, np.stack([prepared.eds[ln] for ln in prepared.lines] + [prepared.haadf]))
    Path(str(data) + ".json").write_text(json.dumps({"lines": prepared.lines, "r": [float(v) for v in rr.r],
                                                     "geometry": g.key()}))
    configs = {
        "one_process": lambda: run_runner("inprocess", prepared, rr, args),
        "local_cluster": lambda: run_runner(f"local:{args.workers}", prepared, rr, args),
        "pinned": lambda: run_pinned(data, args),
    }
    runs: dict[str, list] = {name: [] for name in configs}
    reference = None
    for _ in range(args.repeat):  # rounds: every configuration sees the machine's load of the moment
        for name, fn in configs.items():
            before = load()
            rep, maps = fn()
            rep["load_before"], rep["load_after"] = before, load()
            if reference is None:
                reference = maps
            rep["maps_identical_to_one_process"] = bool(np.array_equal(maps, reference))
            runs[name].append(rep)
            print(f"{name}: chunks {rep['chunks_s']:.1f} s ({rep['runner']}), load {rep['load_after']}",
                  file=sys.stderr)
            del maps
    for name, reps in runs.items():
        keep = min(reps, key=lambda r: r["chunks_s"])
        keep["all_chunks_s"] = [r["chunks_s"] for r in reps]
        keep["all_cpu_s"] = [r["cpu_s"] for r in reps]
        report["configs"][name] = keep
    report["dask_overhead_per_chunk"] = dask_overhead(prepared, rr, args)
    report["store"] = store_costs(reference, prepared, args)
    for p in Path(tmpdir).iterdir():
        p.unlink()
    os.rmdir(tmpdir)

    c = report["configs"]
    n_chunks = len(chunks_of(args))
    one, lc, pin = c["one_process"]["chunks_s"], c["local_cluster"]["chunks_s"], c["pinned"]["chunks_s"]
    cpu = {name: min(c[name]["all_cpu_s"]) for name in c}
    report["summary"] = {
        "one_process_s": one, "local_cluster_s": lc, "pinned_s": pin,
        "cpu_s": cpu, "dask_extra_cpu_vs_pinned_per_chunk_s": (cpu["local_cluster"] - cpu["pinned"]) / n_chunks,
        "speedup_local_cluster_vs_one_process": one / lc, "speedup_pinned_vs_one_process": one / pin,
        "local_cluster_startup_s": c["local_cluster"]["startup_s"],
        "dask_extra_vs_pinned_s": lc - pin,
        "dask_extra_vs_pinned_per_chunk_s": (lc - pin) * args.workers / n_chunks,
        "dask_overhead_per_chunk_sequential_s": report["dask_overhead_per_chunk"]["mean_overhead_s"],
        "compute_per_chunk_s": report["dask_overhead_per_chunk"]["mean_compute_s"],
        "load_at_end": load(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(json.dumps(report["summary"], indent=2))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
