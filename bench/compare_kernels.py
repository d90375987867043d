#!/usr/bin/env python
"""One core, CPU seconds: the fused SIRT kernel per column and iteration, for several layouts.

For workload B's geometry (256^2, 15 tilts) it times ``sirt_iteration`` on 256 columns
per call, alternating the configurations ``GROUPxLANES[xMIN_SHARED]`` round after round
in one process (best of ``--rounds``; CPU seconds, so other processes taking the core
away matter less), optionally against the kernels of another source tree (``--other``,
e.g. the commit a change started from) on the same matrix and data; with ``--other`` it
also checks that both give the same bits.

    python bench/compare_kernels.py --configs 4x64,4x32,2x32 --other /work/main/src
    python bench/compare_kernels.py --configs 4x64x1,4x64x2,4x64x3,2x128
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402  (the same workload definitions)


def load_kernels(src: Path):
    """``(kernels, simd)`` modules of ``src/chemtomo/projector``, imported as a separate package."""
    pkg = Path(tempfile.mkdtemp(prefix="kernels_")) / "otherkernels"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in ("_simd.py", "_kernels.py"):
        (pkg / name).write_text((src / "chemtomo" / "projector" / name).read_text())
    sys.path.insert(0, str(pkg.parent))
    spec = importlib.util.find_spec("otherkernels")
    assert spec is not None
    return importlib.import_module("otherkernels._kernels"), importlib.import_module("otherkernels._simd")


def main(argv=None) -> int:
    """Time the configurations, print one line each; the exit code (1 if the bits differ)."""
    import numba

    from chemtomo.projector import _kernels as K
    from chemtomo.projector import _simd as S
    from chemtomo.projector import make_operator

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="4x64,4x32,2x32,2x64")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--columns", type=int, default=256)
    p.add_argument("--other", type=Path, default=None, help="another tree's src/ to compare with")
    args = p.parse_args(argv)
    numba.set_num_threads(1)
    geom = speed.make_geometry(speed.WORKLOADS["B"])
    configs = [tuple(int(v) for v in (c.split("x") + ["1"])[:3]) for c in args.configs.split(",")]
    impls = {"this": (K, S)}
    if args.other is not None:
        impls["other"] = load_kernels(args.other)
    rng = np.random.default_rng(0)
    ops, runs = {}, {}
    for g, kb, ms in configs:
        op = ops.setdefault((g, ms), make_operator(geom, group=g, min_shared=ms))
        nblk = max(1, args.columns // kb)
        b = rng.random((nblk, geom.n_rays, kb), dtype=np.float32)
        for name, (Km, Sm) in impls.items():
            runs[(name, g, kb, ms)] = (Km.sirt_iteration, [
                op.mat, np.full(op.n_slots, 0.01, np.float32), np.full(geom.n_rays, 0.01, np.float32), b,
                np.empty_like(b), np.zeros((nblk, op.n_slots, kb), np.float32), np.zeros_like(b),
                np.empty((nblk, kb)), True, Sm.Lanes(g), Sm.Lanes(kb)])
    best = dict.fromkeys(runs, np.inf)
    for it in range(args.rounds + 1):
        for key, (fn, a) in runs.items():
            t = time.process_time()
            fn(*a)
            dt = time.process_time() - t
            if it > 0:  # the first round compiles / loads the kernels
                best[key] = min(best[key], dt / (a[3].shape[0] * key[2]))
    same = True
    for g, kb, ms in configs:
        line = f"group {g} lanes {kb} min_shared {ms}: this {best[('this', g, kb, ms)] * 1e6:.1f} us"
        if "other" in impls:
            line += f", other {best[('other', g, kb, ms)] * 1e6:.1f} us per column-iteration (one core)"
            a, o = runs[("this", g, kb, ms)][1], runs[("other", g, kb, ms)][1]
            eq = np.array_equal(a[5], o[5]) and np.array_equal(a[7], o[7])
            same &= eq
            line += ", same bits" if eq else ", DIFFERENT bits"
        else:
            line += " per column-iteration (one core)"
        print(line, flush=True)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
