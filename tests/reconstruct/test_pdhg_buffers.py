"""PDHG on the batched engine with reused buffers (issue 17): the same bits, callbacks' arrays kept intact."""

import numpy as np

from chemtomo.geometry import TiltGeometry
from chemtomo.projector import ChannelMix, RowScale, make_operator
from chemtomo.projector.base import Scaled
from chemtomo.reconstruct.pdhg import GroupL21, KullbackLeibler, RowScaled, Term, pdhg
from chemtomo.reconstruct.tv import Gradient2D


def _problem(m, seed):
    geom = TiltGeometry(np.arange(-60.0, 60.1, 15.0), 12, 1.0)
    W = make_operator(geom)
    k, shape = 2, (12, 12)
    rng = np.random.default_rng(seed)
    mix = np.array([[1.0, 0.0], [0.0, 0.5], [1.0, 1.0]], np.float32)
    truth = rng.random((k * W.shape[1], m)).astype(np.float32)
    b = rng.poisson(ChannelMix(W, mix).forward(truth) * 3).astype(np.float32)
    d = (0.5 + rng.random((3 * W.shape[0], m))).astype(np.float32)
    data = Term(RowScale(ChannelMix(W, mix), d), RowScaled(KullbackLeibler(b), d), "data")
    tv = Term(Scaled(Gradient2D(shape, k), 0.6), GroupL21(np.full(m, 0.4), k, shape, True), "tv")
    return [data, tv], k * W.shape[1]


def test_engine_pdhg_same_bits_with_and_without_buffers(no_buffers):
    """A fused-like solve (row-scaled channel mix of the engine, Poisson, TV), two column counts in turn.

    Recycled buffers (``x`` into ``K^T y``, ``K x`` into the dual, the engine's packing) against
    operators that return new arrays: the same iterates, objectives and residuals; a callback that
    keeps ``state.x`` itself (not a copy) finds it unchanged afterwards.
    """
    for m, seed in ((5, 1), (2, 2), (5, 3)):
        terms, n = _problem(m, seed)
        kept, copies = [], []

        def watch(s, kept=kept, copies=copies):
            kept.append(s.x)
            copies.append(s.x.copy())

        a = pdhg(terms, 25, x0=np.ones((n, m), np.float32), monitor_every=6, callback_every=4, callback=watch)
        c = pdhg([Term(no_buffers(t.op), t.f, t.name) for t in terms], 25, x0=np.ones((n, m), np.float32),
                 monitor_every=6)
        assert np.array_equal(a.x, c.x)
        for key in ("objective", "primal_residual", "dual_residual"):
            assert np.array_equal(a.info[key], c.info[key])
        assert len(kept) == 7 and all(np.array_equal(u, v) for u, v in zip(kept, copies, strict=True))
        b = pdhg(terms, 25, x0=np.ones((n, m), np.float32), monitor_every=6)  # no callback: every x recycled
        assert np.array_equal(b.x, c.x)


def test_monitoring_changes_no_iterate_and_no_residual():
    """A measured iteration's kept arrays (dual step output, y - y_new, x - x_new) leave no trace.

    Monitoring every iteration, every third, or only the last: the same iterates, and the same
    objectives and residuals at the iterations both monitor (each run's kept buffers have a
    different history, so a stale value read would show). Also with the adaptive step balance,
    whose residuals are measured every ``adapt_every`` iterations whatever the monitoring.
    """
    terms, n = _problem(4, 7)
    for kw in ({}, {"adaptive": True, "adapt_every": 5}):
        runs = {every: pdhg(terms, 24, x0=np.ones((n, 4), np.float32), monitor_every=every, **kw)
                for every in (1, 3, 24)}
        for every, res in runs.items():
            assert np.array_equal(res.x, runs[1].x)
            rows = np.isin(runs[1].info["iterations"], res.info["iterations"])
            for key in ("objective", "primal_residual", "dual_residual"):
                assert np.array_equal(res.info[key], runs[1].info[key][rows]), (every, key)
