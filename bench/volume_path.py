#!/usr/bin/env python
"""CPU seconds of each stage of the real example's path (line maps, preprocessing, reconstruction, outputs).

Runs ``chemtomo reconstruct`` on the NCEM .bcf series in this process, with the
stages of :func:`chemtomo.pipeline.experimental.run_experimental` wrapped to
record user+system CPU seconds (``resource.getrusage``, every thread) and wall
seconds; prints one JSON object. CPU seconds are what to compare on a shared
machine: other processes stretch the wall time far more than the CPU time.

    PYTHONPATH=src .venv/bin/python bench/volume_path.py --out /tmp/vp      # EDS-SIRT, 20 iterations

The chemtomo measured is whichever ``PYTHONPATH`` puts first (a checkout of an
older commit for a "before" column). Run it twice first so numba's cache is warm:
a cold cache puts the kernels' compilation into the preprocessing and
reconstruction stages.
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import time

STAGES = {"load_line_maps": "line_maps", "preprocess_tilt_series": "preprocess",
          "reconstruct_experimental": "reconstruct", "write_outputs": "outputs"}
DATA = "../shared/data/ncem-idp-eds-tilt-series"
ARGS = ("--lines O_Ka Mg_Ka Si_Ka Fe_Ka Pt_La --line-method fit --elements O Mg Si Fe Pt Ga Al Na S C Cu N "
        "--mask otsu --method eds_sirt -n 20")


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv=None) -> dict:
    """Run the example once and return ``{stage: {"cpu_s", "wall_s"}}`` (and the whole run's CPU seconds)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output folder of the run")
    p.add_argument("--data", default=DATA, help="the .bcf series (default: %(default)s)")
    a = p.parse_args(argv)
    c0 = _cpu_s()
    import chemtomo
    import chemtomo.pipeline.experimental as E
    from chemtomo.cli import build_parser
    from chemtomo.cli._raw import raw_options

    times: dict = {}

    def wrap(name, key):
        f = getattr(E, name)

        @functools.wraps(f)
        def timed(*args, **kw):
            c, w = _cpu_s(), time.perf_counter()
            try:
                return f(*args, **kw)
            finally:
                times[key] = {"cpu_s": round(_cpu_s() - c, 2), "wall_s": round(time.perf_counter() - w, 2)}

        setattr(E, name, timed)

    for name, key in STAGES.items():
        wrap(name, key)
    args = build_parser().parse_args(["reconstruct", a.data, *ARGS.split(), "--out", a.out])
    lo, po, ro, oo = raw_options(args)
    E.run_experimental(args.inputs[0], args.lines, args.out, line_maps=lo, preprocess=po, reconstruction=ro,
                       output=oo, progress=False)
    times["process_cpu_s"] = round(_cpu_s() - c0, 2)
    times["chemtomo"] = chemtomo.__file__
    return times


if __name__ == "__main__":
    print(json.dumps(main()))
