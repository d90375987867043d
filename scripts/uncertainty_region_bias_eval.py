#!/usr/bin/env python
"""Coverage of region-mean intervals built on the region-model bias (issue 15, idea (b)).

Reads the dumps of ``scripts/uncertainty_region_bias.py``. Per dump (specimen, method,
noise-seed set) and region definition, the share of (realisation, labelled region,
element) whose truth lies in the nominal 90 % interval:

- ``percentile``: ``[q05, q95]`` of the replicas' region means;
- ``corrected <src> <it>``: shifted by a bias estimate ``b``, ``[q05 - b, q95 - b]``;
- ``widened <src> <it>``: ``[q05 - |b|, q95 + |b|]``;
- with ``--loso``, ``[q05 - k |b|, q95 + k |b|]``, ``k`` fitted per method on the *other*
  specimens' dumps to a pooled coverage of 0.90 (with the median widening ``k |b|`` of the
  specimen left out, in weight fraction).

The bias estimates (``src``): ``b1``, the plug-in ``T(x) - x`` averaged over the region
(signed; the library's ``bias``); ``bR``, the region model with every label constant, at
iteration ``it``; ``bH``, the hybrid model (``--uniform-sd``: only the uniform labels
constant); ``oracle``, the response of the truth itself (``--oracle``; not available
from data, it bounds what the response can do); ``clean``, the estimator's own bias on
the noiseless simulated series (``--oracle``; the bias without noise). ``--ratios`` prints every region's true
bias (mean over realisations, first element) beside its SE and the mean of each estimate.

Usage::

    python scripts/uncertainty_region_bias_eval.py 'rb/*.npz' --loso --ratios
"""

from __future__ import annotations

import argparse

import numpy as np
from uncertainty_interval_eval import load_dumps, smallest_scale

TARGET = 0.90


def _names(d: dict) -> list[str]:
    return sorted({k.split(".")[1] for k in d if k.startswith("region.")})


def _bias(d: dict, n: str, src: str, it: int) -> np.ndarray:
    """Region ``n``'s bias estimate per (realisation, element): ``src`` bR / bH at iteration ``it``, or oracle."""
    b = d[f"region.{n}.{src}"]
    return b if b.ndim == 2 else b[:, it]


def _hits(d: dict, how: str, it: int = 0, k: float = 1.0, src: str = "bR") -> np.ndarray:
    """Truth inside the interval, per (realisation, region, element), flattened."""
    out = []
    for n in _names(d):
        g = {q: d[f"region.{n}.{q}"] for q in ("value", "low", "high", "truth")}
        ok = np.all(np.isfinite(g["value"]), axis=1)
        b = _bias(d, n, src, it)
        lo, hi = g["low"], g["high"]
        if how == "corrected":
            lo, hi = lo - b, hi - b
        elif how == "scaled":
            lo, hi = lo - k * np.abs(b), hi + k * np.abs(b)
        out.append(((g["truth"] >= lo) & (g["truth"] <= hi))[ok].ravel())
    return np.concatenate(out)


def _fit(dumps: list, it: int, src: str = "bR") -> float:
    """The smallest k whose pooled coverage over ``dumps`` reaches TARGET (bisection on [0, 64])."""
    def cov(k):
        return float(np.concatenate([_hits(d, "scaled", it, k, src) for d in dumps]).mean())

    return smallest_scale(cov, TARGET)


def main(argv=None) -> None:
    """Print the coverage table (and ``--loso``, ``--ratios``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dumps", nargs="+", help="glob patterns of the dumps")
    ap.add_argument("--loso", action="store_true", help="leave one specimen out: fit k on the others, check on it")
    ap.add_argument("--ratios", action="store_true", help="per region: true bias, SE and mean bR per iteration")
    a = ap.parse_args(argv)
    dumps = load_dumps(a.dumps)
    nit = int(max(int(d["iters"]) for d in dumps.values())) + 1
    srcs = [x for x in ("b1", "bR", "bH", "oracle", "clean")  # the estimates every dump holds
            if all(any(k.endswith(f".{x}") for k in d) for d in dumps.values())]
    its = {x: [0] if x in ("b1", "oracle", "clean") else list(range(nit)) for x in srcs}
    variants = [(x, i) for x in srcs for i in its[x]]
    cols = ["percentile"] + [f"{h} {x} {i}" for h in ("corrected", "widened") for x, i in variants]
    print("| dump | realisations | " + " | ".join(cols) + " |\n" + "|---" * (len(cols) + 2) + "|")
    pooled: dict = {}
    for key, d in dumps.items():
        m = key.split(".")[1]
        hs = [_hits(d, "percentile")] + [_hits(d, h if h == "corrected" else "scaled", i, 1.0, x)
                                          for h in ("corrected", "widened") for x, i in variants]
        for c, h in zip(cols, hs, strict=True):
            pooled.setdefault(m, {}).setdefault(c, []).append(h)
        print(f"| {key} | {d['mask'].shape[0]} | " + " | ".join(f"{h.mean():.2f}" for h in hs) + " |")
    for m, per in pooled.items():
        print(f"| pooled {m} | | " + " | ".join(f"{np.concatenate(per[c]).mean():.2f}" for c in cols) + " |")
    if a.loso:
        print("\nleave one specimen out: k fitted on the other specimens' dumps (pooled 0.90), coverage of the one "
              "left out")
        head = " | ".join(f"k {x} {i} | cov {x} {i} | median k abs(b) {x} {i}" for x, i in variants)
        print(f"| method | specimen | {head} |\n" + "|---" * (2 + 3 * len(variants)) + "|")
        for m in sorted({k.split(".")[1] for k in dumps}):
            mine = {k: d for k, d in dumps.items() if k.split(".")[1] == m}
            pool = {v: [] for v in variants}
            for sp in sorted({k.split(".")[0] for k in mine}):
                rest = [d for k, d in mine.items() if k.split(".")[0] != sp]
                held = [d for k, d in mine.items() if k.split(".")[0] == sp]
                cells = []
                for x, i in variants:
                    k = _fit(rest, i, x)
                    h = np.concatenate([_hits(d, "scaled", i, k, x) for d in held])
                    pool[(x, i)].append(h)
                    wide = np.concatenate([k * np.abs(_bias(d, n, x, i)).ravel() for d in held for n in _names(d)
                                           if np.all(np.isfinite(d[f"region.{n}.value"]))])
                    cells.append(f"{k:.2f} | {h.mean():.2f} | {np.median(wide):.3f}")
                print(f"| {m} | {sp} | " + " | ".join(cells) + " |")
            print(f"| {m} | pooled | " + " | ".join(
                f"all: {_fit(list(mine.values()), i, x):.2f} | {np.concatenate(pool[(x, i)]).mean():.2f} | "
                for x, i in variants) + " |")
    if a.ratios:
        print("\n| dump | region | true sd | true bias | SE | " + " | ".join(f"{x} {i}" for x, i in variants) +
              " |\n" + "|---" * (5 + len(variants)) + "|")
        for key, d in dumps.items():
            for n in _names(d):
                v, t = d[f"region.{n}.value"][:, 0], d[f"region.{n}.truth"][:, 0]
                if not np.all(np.isfinite(v)):
                    continue
                tb, se = float(np.mean(v - t)), float(np.mean(d[f"region.{n}.se"][:, 0]))
                print(f"| {key} | {n} | {d[f'region.{n}.true_sd'][0, 0]:.3f} | {tb:+.4f} | {se:.4f} | " +
                      " | ".join(f"{float(np.mean(_bias(d, n, x, i)[:, 0])):+.4f}" for x, i in variants) + " |")

if __name__ == "__main__":
    main()
