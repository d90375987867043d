#!/usr/bin/env python
"""Where the engine's time goes: one core, CPU seconds, the pixel pass against the FMA rate.

For workload B's geometry (256^2, 15 tilts) it times, on one thread and in CPU
seconds (robust to other processes taking the core away), the parts of a fused
SIRT iteration on one block of 64 columns, for each pixel grouping:

- the pixel pass (back-project, update, clip, forward-project) per block;
- the ray phase (``r = R (b - y)`` and norms) per block;
- the multiply-adds it executes (``4 * (shared * group + single)`` per column,
  zero weights of a group included) and the useful ones (``4 nnz``);

and the same core's float32 peak (sgemm on one thread). ``executed_fraction_of_peak``
near 1 means the kernel is bound by the FMA units; ``useful_fraction_of_peak`` is what
counts against the arithmetic bound.

    python bench/profile_engine.py --kind strip --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402  (the same machine probes)

CONFIGS = [(1, 1), (2, 1), (4, 1), (4, 2), (4, 3)]


def main(argv=None) -> int:
    """Profile the engine's pixel pass and ray phase for each grouping in ``CONFIGS``; the exit code."""
    import numba

    from chemtomo.projector import _kernels as K
    from chemtomo.projector import make_operator
    from chemtomo.projector._simd import Lanes

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=("strip", "linear", "line"), default="strip")
    p.add_argument("--blocks", type=int, default=4, help="blocks of 64 columns per timed call")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    numba.set_num_threads(1)
    geom = speed.make_geometry(speed.WORKLOADS["B"])
    kb, nblk = 64, args.blocks
    peak1 = speed.measure_peak_flops(1)
    rng = np.random.default_rng(0)
    b = rng.random((nblk, geom.n_rays, kb), dtype=np.float32)
    R = np.full(geom.n_rays, 0.01, np.float32)
    out = {"kind": args.kind, "block_width": kb, "blocks_per_call": nblk, "threads": 1,
           "sgemm_peak_one_core_flops_per_s": peak1, "command": " ".join(["bench/profile_engine.py"] + sys.argv[1:]),
           "configs": []}
    for group, min_shared in CONFIGS:
        op = make_operator(geom, kind=args.kind, group=group, min_shared=min_shared)
        x = np.zeros((nblk, op.n_slots, kb), np.float32)
        y = np.zeros_like(b)
        r = np.empty_like(b)
        norms = np.empty((nblk, kb))
        C = np.full(op.n_slots, 0.01, np.float32)
        gt, kt = op._gt, Lanes(kb)
        K.sirt_iteration(op.mat, C, R, b, r, x, y, norms, True, gt, kt)  # compile / warm
        K.sirt_pixel_pass(op.mat, C, r, x, y, True, gt, kt)
        t_it, t_px = np.inf, np.inf
        for _ in range(args.repeat):
            c = time.process_time()
            K.sirt_iteration(op.mat, C, R, b, r, x, y, norms, True, gt, kt)
            t_it = min(t_it, time.process_time() - c)
            c = time.process_time()
            K.sirt_pixel_pass(op.mat, C, r, x, y, True, gt, kt)
            t_px = min(t_px, time.process_time() - c)
        shared, single = op.n_entries
        useful = 4 * op.nnz * kb * nblk
        executed = 4 * (shared * group + single) * kb * nblk
        row = {"group": group, "min_shared": min_shared, "nnz": op.nnz, "shared_entries": shared,
               "single_entries": single, "fill": op.fill,
               "pixel_pass_cpu_seconds_per_block": t_px / nblk,
               "ray_phase_cpu_seconds_per_block": max(0.0, t_it - t_px) / nblk,
               "useful_flops_per_s": useful / t_px, "executed_flops_per_s": executed / t_px,
               "useful_fraction_of_peak": useful / t_px / peak1,
               "executed_fraction_of_peak": executed / t_px / peak1,
               "ray_rows_touched_per_block": int(shared + single),
               "cache_bytes_per_block": int((shared + single) * 3 * kb * 4)}
        out["configs"].append(row)
        speed.log(f"group {group} min_shared {min_shared}: pixel pass {t_px / nblk * 1e3:.2f} ms/block, "
                  f"useful {row['useful_fraction_of_peak']:.2f} / executed {row['executed_fraction_of_peak']:.2f} "
                  f"of one core's sgemm peak, fill {op.fill:.2f}")
    path = speed.RESULTS / f"profile-B-{args.kind}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(path)
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
