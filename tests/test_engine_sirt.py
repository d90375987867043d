"""The engine's fused SIRT: agreement with ASTRA's SIRT and with the generic path; HEBT; chunks."""

import astra
import numpy as np
import pytest

from chemtomo.geometry import TiltGeometry, volume_to_columns
from chemtomo.projector import MatrixOperator, Scaled, make_operator
from chemtomo.projector.astra_backend import astra_geometries, astra_matrix, create_projector
from chemtomo.projector.batched import BatchedOperator
from chemtomo.reconstruct import hebt_operator, hebt_sirt, sirt, sirt_chunked, sirt_weights
from chemtomo.simulate import core_shell_phantom

PAPER = TiltGeometry(np.arange(-75.0, 75.1, 5.0), 97, 1.5)      # workload A: the paper's phantom
WEDGE = TiltGeometry(np.arange(-72.0, 54.1, 9.0), 48, 2.74)     # workload B's tilts, small grid


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


def astra_sirt(geom, kind, sino, n_iter, min_constraint=True):
    """ASTRA's own CPU SIRT on one slice (the reference the issue names)."""
    vol, proj = astra_geometries(geom)
    pid = create_projector(geom, kind)
    sid = astra.data2d.create("-sino", proj, sino.reshape(geom.n_tilts, geom.n_pixels))
    rid = astra.data2d.create("-vol", vol, 0)
    cfg = astra.astra_dict("SIRT")
    cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid)
    if min_constraint:
        cfg["option"] = {"MinConstraint": 0}
    aid = astra.algorithm.create(cfg)
    try:
        astra.algorithm.run(aid, n_iter)
        return astra.data2d.get(rid).ravel()
    finally:
        astra.algorithm.delete(aid)
        astra.data2d.delete([sid, rid])
        astra.projector.delete(pid)


def _phantom_data(geom, rng, noise=0.02):
    """Two channels of the paper's core-shell particle, projected by ASTRA's matrix, with noise."""
    ph = core_shell_phantom(geom.n_grid, geom.grid_pixel_nm)
    x = volume_to_columns(ph.mass).astype(np.float32)            # (n_vox, 2): Ag, Au
    b = MatrixOperator(astra_matrix(geom, "strip")).forward(x)
    b += rng.normal(0.0, noise * b.max(), b.shape).astype(np.float32)  # noise: the clip at 0 acts
    return b


@pytest.mark.parametrize("kind", ["strip", "linear"])
@pytest.mark.parametrize("geom", [PAPER, WEDGE], ids=["paper", "wedge"])
def test_fused_sirt_agrees_with_astra_sirt(geom, kind, rng):
    """Max relative difference from ASTRA's SIRT (MinConstraint 0, same projector) below 1e-4."""
    b = _phantom_data(geom, rng)
    op = make_operator(geom, kind=kind)
    res = sirt(op, b, 100)
    assert res.info["engine"] == "batched-fused"
    assert np.min(res.x) == 0.0  # the constraint was active
    for j in range(b.shape[1]):
        ref = astra_sirt(geom, kind, b[:, j], 100)
        assert _rel(res.x[:, j], ref) < 1e-4


def test_unconstrained_agrees_with_astra(rng):
    b = _phantom_data(WEDGE, rng, noise=0.1)
    res = sirt(make_operator(WEDGE), b[:, :1], 50, nonneg=False)
    assert np.min(res.x) < 0
    assert _rel(res.x[:, 0], astra_sirt(WEDGE, "strip", b[:, 0], 50, min_constraint=False)) < 1e-4


@pytest.mark.parametrize("group", [1, 2, 4])
def test_fused_equals_generic_path(group, rng):
    """Same iterates, residual norms, snapshots and callback sequence as the generic solver."""
    W = astra_matrix(WEDGE, "strip")
    fast = BatchedOperator(W, (WEDGE.n_grid, WEDGE.n_grid), group=group)
    slow = MatrixOperator(W)
    b = rng.random((WEDGE.n_rays, 5)).astype(np.float32) * 50
    x0 = rng.random((WEDGE.n_voxels, 5)).astype(np.float32)
    seen = {"fast": [], "slow": []}
    kw = dict(relaxation=0.8, snapshots=[3, 10], x0=x0)
    rf = sirt(fast, b, 12, callback=lambda s: seen["fast"].append(s.iteration), **kw)
    rs = sirt(slow, b, 12, callback=lambda s: seen["slow"].append(s.iteration), **kw)
    assert rf.info["engine"] == "batched-fused" and rs.info["engine"] == "generic"
    assert _rel(rf.x, rs.x) < 1e-5
    assert _rel(rf.residual_norms, rs.residual_norms) < 1e-5
    assert sorted(rf.snapshots) == [3, 10] and _rel(rf.snapshots[3], rs.snapshots[3]) < 1e-5
    assert seen["fast"] == seen["slow"] == list(range(1, 13))


def test_fused_vector_input_and_early_stop(rng):
    op = make_operator(WEDGE)
    b = rng.random(WEDGE.n_rays).astype(np.float32)
    res = sirt(op, b, 50, callback=lambda s: s.iteration == 7, snapshots=[2])
    assert res.n_iter == 7 and res.x.shape == (WEDGE.n_voxels,)
    assert res.snapshots[2].shape == (WEDGE.n_voxels,)
    assert res.residual_norms.shape == (7, 1)


@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_hebt_fused_equals_generic(alpha, rng):
    """HEBT's stacked operator runs fused without being materialised, with the same result."""
    W = astra_matrix(WEDGE, "strip")
    fast = BatchedOperator(W, (WEDGE.n_grid, WEDGE.n_grid))
    slow = MatrixOperator(W)
    s, k = 4, 3
    eds = [rng.random((WEDGE.n_rays, s)).astype(np.float32) for _ in range(k)]
    r = np.array([0.5, 1.0, 2.0])
    haadf = sum(ri * e for ri, e in zip(r, eds, strict=True)).astype(np.float32)
    rf = hebt_sirt(fast, haadf, eds, r, alpha, 30, snapshots=[5])
    rs = hebt_sirt(slow, haadf, eds, r, alpha, 30, snapshots=[5])
    assert rf.info["engine"] == "batched-fused"
    assert rf.x.shape == (k * WEDGE.n_voxels, s)
    assert _rel(rf.x, rs.x) < 1e-5
    assert _rel(rf.residual_norms, rs.residual_norms) < 1e-5
    assert _rel(rf.snapshots[5], rs.snapshots[5]) < 1e-5


def test_scaled_operator_runs_fused(rng):
    W = astra_matrix(WEDGE, "linear")
    b = rng.random((WEDGE.n_rays, 3)).astype(np.float32)
    rf = sirt(Scaled(BatchedOperator(W), 2.5), b, 20)
    rs = sirt(Scaled(MatrixOperator(W), 2.5), b, 20)
    assert rf.info["engine"] == "batched-fused"
    assert _rel(rf.x, rs.x) < 1e-5


def test_non_separable_pixel_weights_fall_back(rng):
    """User weights HEBT's fused path cannot factor: the generic path runs, same answer."""
    W = astra_matrix(WEDGE, "strip")
    op = hebt_operator(BatchedOperator(W), 2, 0.5)
    R, C = sirt_weights(op)
    C = C * rng.uniform(0.5, 1.5, C.shape).astype(np.float32)
    b = rng.random((op.shape[0], 2)).astype(np.float32)
    assert op.fused_sirt_plan(b, None, R, C, 1.0, True) is None
    res = sirt(op, b, 10, weights=(R, C))
    ref = sirt(hebt_operator(MatrixOperator(W), 2, 0.5), b, 10, weights=(R, C))
    assert res.info["engine"] == "generic" and _rel(res.x, ref.x) < 1e-5


def test_chunks_threads_and_blocks_do_not_change_the_result(rng):
    """A volume in chunks of slices gives the one-shot result bit for bit, whatever the threads."""
    W = astra_matrix(WEDGE, "strip")
    grid = (WEDGE.n_grid, WEDGE.n_grid)
    b = rng.random((WEDGE.n_rays, 70)).astype(np.float32) * 10
    one = sirt(BatchedOperator(W, grid, block_width=64), b, 15).x
    for kb, threads in [(8, 1), (16, 2), (32, 1)]:
        op = BatchedOperator(W, grid, block_width=kb, n_threads=threads)
        assert np.array_equal(sirt(op, b, 15).x, one)
    op = BatchedOperator(W, grid)
    budget = op.matrix_bytes + 12 * op.bytes_per_column()
    chunked = sirt_chunked(op, b, 15, budget)
    assert len(chunked.info["chunks"]) == 6 and chunked.info["chunks"][0] == (0, 12)
    assert np.array_equal(chunked.x, one)
    assert chunked.residual_norms.shape == (15, 70)


def test_chunked_hebt_into_a_memmap(tmp_path, rng):
    W = BatchedOperator(astra_matrix(WEDGE, "strip"), (WEDGE.n_grid, WEDGE.n_grid))
    op = hebt_operator(W, 2, 0.6)
    b = rng.random((op.shape[0], 9)).astype(np.float32)
    out = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=(op.shape[1], 9))
    res = sirt_chunked(op, b, 10, W.matrix_bytes + 2 * 2 * W.bytes_per_column(), out=out)
    assert len(res.info["chunks"]) == 5
    out.flush()
    assert np.array_equal(np.load(tmp_path / "x.npy"), sirt(op, b, 10).x)


def test_sirt_chunked_needs_the_engine(rng):
    with pytest.raises(TypeError, match="BatchedOperator"):
        sirt_chunked(make_operator(WEDGE, "sparse"), np.ones((WEDGE.n_rays, 2), np.float32), 2, 10**9)


@pytest.mark.slow
def test_workload_b_slices_agree_with_astra(rng):
    """Workload B's geometry (256^2, 15 tilts -72..54): 3 slices, 100 iterations, against ASTRA."""
    geom = TiltGeometry(np.arange(-72.0, 54.1, 9.0), 256, 2.74)
    ph = core_shell_phantom(256, 2.74 * 97 / 256 * 1.5)
    x = volume_to_columns(ph.mass).astype(np.float32)
    op = make_operator(geom)
    b = op.forward(np.concatenate([x, x[::-1]], axis=1)[:, :3])
    b += rng.normal(0.0, 0.02 * b.max(), b.shape).astype(np.float32)
    res = sirt(op, b, 100)
    for j in range(3):
        assert _rel(res.x[:, j], astra_sirt(geom, "strip", b[:, j], 100)) < 1e-4
