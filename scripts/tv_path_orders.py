"""The TV rule's continuation path in other orders and budgets: the choice each gives on the phantom.

A copy of the continuation rule's arithmetic (:func:`chemtomo.reconstruct.tvpath.tv_path`
scored as :func:`chemtomo.reconstruct.autoparam.cv_tv_weight` scores) with the order of
the grid and the budgets as arguments, on one slice of the phantom (the rule's choice is
the same on copies of it). Variants (the first point always 300 iterations from the
default start, unless stated):

- ``down<w>``: largest mu down, ``w`` per later point (the rule's schedule);
- ``down_noscale<w>``: the same without rescaling the TV dual by the weight ratio;
- ``up<w>``: smallest mu up;
- ``middle<w>``: from the grid's middle down to its smallest, then from the middle up;
- ``first200_down117``: 200 iterations first, 117 per later point (the same cost as ``down100``);
- ``refine<w>_<e>``: ``down<w>``, then the best point and its neighbours run ``e`` more each.

Usage::

    PYTHONPATH=$PWD/src python scripts/tv_path_orders.py 1 down100 up50 up75 up100 middle100
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from chemtomo.reconstruct import get_method
from chemtomo.reconstruct.autoparam import _log_parabola_min
from chemtomo.reconstruct.fused import tv_solve
from chemtomo.reconstruct.heldout import heldout_deviance, ray_folds, training_masks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from tv_rule_cost import phantom_case  # noqa: E402


def main(argv: list[str]) -> None:
    """Print ``variant [mu, column-iterations per column, scores / min]`` for each variant at dose ``argv[0]``."""
    dose, variants = float(argv[0]), argv[1:]
    W, data, _ = phantom_case(dose)
    m = get_method("fused_tv")
    p = m.params({"n_iter": 300})
    c = m.setup(W, data, p)
    mus = np.array(m.default_grid["mu"])
    L, K = mus.size, 4
    counts = np.asarray(data.eds, np.float32)
    k, nr, s = counts.shape
    masks = training_masks(ray_folds(nr))
    col_mask = np.repeat(masks, s, axis=1)
    b = np.tile(counts, (1, 1, K))
    r = data.response_ratios
    unit = np.asarray(r, np.float32)[:, None, None]
    kw = dict(model="fused", haadf=np.tile(data.haadf.reshape(-1, s), (1, K)), r=r, ray_mask=col_mask,
              constants=c, coupled=p.coupled, theta=p.theta, **p.model_options())

    def score(x):
        maps = x.reshape(k, -1, K * s) / unit
        pred = np.stack([W.forward(np.ascontiguousarray(maps[a])) for a in range(k)])
        return float(heldout_deviance(b, pred, 1.0 - col_mask).sum())

    def solve(j, n, start=None, j0=None, scale=True):
        x0 = dual0 = None
        if start is not None:
            x0, dual0 = start
            if scale:
                dual0 = [dual0[0], dual0[1] * np.float32(mus[j] / mus[j0])]
        res = tv_solve(W, b, mu=mus[j], n_iter=n, x0=x0, dual0=dual0, return_dual=True, **kw)
        return res, (res.x, res.info["dual"])

    def path(order, first, warm, scale=True, restart=None, refine=0):
        scores, total, state, prev = np.full(L, np.nan), 0, {}, None
        for step, j in enumerate(order):
            src = (restart or {}).get(j, prev)
            res, st = solve(j, first) if step == 0 else solve(j, warm, state[src], src, scale)
            total += first if step == 0 else warm
            state[j], prev, scores[j] = st, j, score(res.x)
        if refine:
            i = int(np.argmin(scores))
            for j in [t for t in (i - 1, i, i + 1) if 0 <= t < L]:
                res, state[j] = solve(j, refine, state[j], j)
                total += refine
                scores[j] = score(res.x)
        return _log_parabola_min(mus, scores) * K / (K - 1), total, scores

    down, up = list(range(L))[::-1], list(range(L))
    middle = [L // 2, *range(L // 2 - 1, -1, -1), *range(L // 2 + 1, L)]
    for v in variants:
        if v.startswith("down_noscale"):
            out = path(down, 300, int(v[len("down_noscale"):]), scale=False)
        elif v.startswith("down"):
            out = path(down, 300, int(v[4:]))
        elif v.startswith("up"):
            out = path(up, 300, int(v[2:]))
        elif v.startswith("middle"):
            out = path(middle, 300, int(v[6:]), restart={L // 2 + 1: L // 2})
        elif v == "first200_down117":
            out = path(down, 200, 117)
        elif v.startswith("refine"):
            w, e = (int(t) for t in v[6:].split("_"))
            out = path(down, 300, w, refine=e)
        else:
            raise ValueError(f"unknown variant {v!r}")
        mu, total, scores = out
        print(v, json.dumps([mu, total, [round(x / np.nanmin(scores), 5) for x in scores]]), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
