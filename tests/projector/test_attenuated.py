"""Attenuated projector: transmissions against analytic paths, detector symmetry, the contract.

Tolerances: the plane sweep interpolates bilinearly, so a path crossing a sharp
boundary obliquely is off by less than one voxel of path length times mu
(measured: < 0.7 voxel for a sphere; for a slab, < 0.5 voxel of depth along its normal,
which is ``1/|cos|`` voxels of path: large at grazing exit).
"""

import numpy as np
import pytest

from chemtomo.geometry import TiltGeometry
from chemtomo.physics.absorption import DetectorGeometry
from chemtomo.projector import MatrixOperator, astra_matrix, dottest
from chemtomo.projector.attenuated import (
    AttenuatedOperator,
    detector_directions,
    path_integrals,
    transmissions,
)
from chemtomo.reconstruct.pdhg import Term, WeightedL2, pdhg
from chemtomo.reconstruct.sirt import sirt

MU = 0.02  # 1/nm: optical depth 0.02 per 1-nm voxel


def _coords(n):
    c = (n - 1) / 2
    return np.meshgrid(*(np.arange(n) - c,) * 3, indexing="ij")


def test_directions_are_unit_and_follow_the_beam():
    det = DetectorGeometry.preset("super-x")
    d = detector_directions(det, [-60.0, 0.0, 45.0])
    np.testing.assert_allclose(np.linalg.norm(d, axis=2), 1.0, atol=1e-12)
    # at tilt 0 the beam runs along +z (rows): a detector above the specimen has d_z = -sin(18 deg)
    np.testing.assert_allclose(d[1, :, 1], -np.sin(np.deg2rad(18.0)), atol=1e-12)
    # the component along the tilt axis does not change with tilt
    np.testing.assert_allclose(d[0, :, 0], d[2, :, 0], atol=1e-12)


def test_sphere_transmission_matches_the_analytic_chord():
    n, R = 41, 15.0
    z, y, x = _coords(n)
    r = np.sqrt(z**2 + y**2 + x**2)
    mu = np.where(r <= R, MU, 0.0)
    p = np.stack([z, y, x], -1)
    inside = r < R - 2
    for d in ([0.3, 0.5, 0.8], [1.0, 0.0, 0.0], [0.67, 0.67, -0.31]):
        d = np.asarray(d) / np.linalg.norm(d)
        tau = path_integrals(mu, d, (1.0, 1.0, 1.0))
        pd = p @ d
        chord = -pd + np.sqrt(pd**2 - r**2 + R**2 + 0j).real
        assert np.max(np.abs(tau - MU * chord)[inside]) < MU * 1.0  # < 1 voxel of optical depth
        # centre voxel: exp(-mu R) (R + 0.5: the voxelised sphere's face along an axis)
        c = n // 2
        assert abs(tau[c, c, c] - MU * R) < MU * 1.0


@pytest.mark.parametrize("preset", ["super-x", "single"])
def test_slab_transmission_matches_depth_over_cosine(preset):
    n, z0, z1 = 33, 12, 20  # slab rows [12, 20), unbounded along slice and x within the volume
    geom = TiltGeometry([-30.0, 0.0, 30.0], n)
    mu = np.zeros((n, n, n))
    mu[:, z0:z1, :] = MU
    det = DetectorGeometry.preset(preset)
    T = transmissions(mu, geom, det, per_detector=True)  # (det, tilt, vox, slice)
    dirs = detector_directions(det, geom.angles_deg)
    s, z, x = np.meshgrid(*(np.arange(n, dtype=float),) * 3, indexing="ij")
    checked, worst = 0, 0.0
    for k in range(det.n_detectors):
        for t in range(geom.n_tilts):
            d = dirs[t, k]
            depth = (z - (z0 - 0.5)) if d[1] < 0 else ((z1 - 0.5) - z)
            path = depth / abs(d[1])
            exit_s, exit_x = s + path * d[0], x + path * d[2]
            ok = ((z >= z0) & (z < z1) & (exit_s > 0) & (exit_s < n - 1) & (exit_x > 0) & (exit_x < n - 1))
            got = T[k, t].T.reshape(n, n, n)
            # error in voxels of depth along the slab normal (of path: this / |d_z|)
            err = np.abs(-np.log(got[ok]) - MU * path[ok]) / MU * abs(d[1])
            worst = max(worst, float(err.max()))
            checked += ok.sum()
    assert checked > 1000
    # numerical diffusion of the sweep at the slab's faces: under one voxel of depth
    assert worst < 1.0, worst  # measured 0.45 (super-x), 0.57 (single)


def test_slice_mode_equals_3d_for_a_specimen_extruded_along_the_axis():
    n = 25
    geom = TiltGeometry([-40.0, 10.0], n)
    rng = np.random.default_rng(3)
    plane = rng.random((n, n)) * MU
    mu = np.broadcast_to(plane, (n, n, n)).copy()
    det = DetectorGeometry.preset("single")  # across the tilt axis: the path stays in its slice
    T3 = transmissions(mu, geom, det, mode="3d")
    T2 = transmissions(mu, geom, det, mode="slice")
    np.testing.assert_allclose(T3, T2, rtol=1e-6)
    with pytest.raises(ValueError, match="tilt axis"):
        transmissions(mu, geom, DetectorGeometry(0.0, 0.0, 0.1), mode="slice")


def test_four_symmetric_detectors_are_the_weighted_mean_and_mirror_images():
    n = 21
    geom = TiltGeometry([0.0, 20.0], n)
    mu = np.random.default_rng(7).random((n, n, n)) * MU
    sx = DetectorGeometry.preset("super-x")
    T = transmissions(mu, geom, sx)
    singles = [transmissions(mu, geom, sx.single(i)) for i in range(4)]
    np.testing.assert_allclose(T, np.mean(singles, axis=0), rtol=1e-6)
    # azimuth 135 = azimuth 45 mirrored along the tilt axis (slices): T_135(mu) = flip_s T_45(flip_s mu)
    t45 = transmissions(mu[::-1], geom, sx.single(0))[..., ::-1]
    np.testing.assert_allclose(singles[1], t45, rtol=1e-6)
    # centre of a sphere: every detector sees exp(-mu R) alike, so the four average to one
    z, y, x = _coords(n)
    sphere = np.where(np.sqrt(z**2 + y**2 + x**2) <= 8, MU, 0.0)
    Ts = transmissions(sphere, geom, sx, per_detector=True)
    c = (n // 2) * n + n // 2
    centre = Ts[:, 0, c, n // 2]
    np.testing.assert_allclose(centre, centre[0], rtol=1e-6)
    np.testing.assert_allclose(transmissions(sphere, geom, sx)[0, c, n // 2], centre[0], rtol=1e-6)


@pytest.fixture(scope="module")
def small():
    geom = TiltGeometry(np.arange(-60.0, 61.0, 20.0), 16)
    W = astra_matrix(geom)
    z, y, x = _coords(16)
    mu = np.where(np.sqrt(z**2 + y**2 + x**2) <= 6, 0.05, 0.0)[:3]
    T = transmissions(mu, geom, DetectorGeometry.preset("super-x"))
    return geom, W, T


def test_adjoint_dot_test(small):
    geom, W, T = small
    op = AttenuatedOperator(W, T)
    assert op.column_dependent() and op.shape == W.shape
    lhs, rhs = dottest(op, k=3, rng=0)
    assert abs(lhs - rhs) <= 1e-5 * max(abs(lhs), 1.0)
    shared = AttenuatedOperator(W, T[:, :, 1])  # one column of T: any number of columns
    assert not shared.column_dependent()
    lhs, rhs = dottest(shared, k=5, rng=1)
    assert abs(lhs - rhs) <= 1e-5 * max(abs(lhs), 1.0)
    with pytest.raises(ValueError, match="3 columns"):
        op.forward(np.ones((W.shape[1], 2), np.float32))


def test_abs_sums_match_the_dense_operator(small):
    geom, W, T = small
    op = AttenuatedOperator(W, T)
    dense = [AttenuatedOperator(W, T[:, :, j]).forward(np.eye(W.shape[1], dtype=np.float32)) for j in range(3)]
    rows = np.stack([d.sum(axis=1) for d in dense], axis=1)
    cols = np.stack([d.sum(axis=0) for d in dense], axis=1)
    np.testing.assert_allclose(op.abs_row_sums(), rows, rtol=1e-5)
    np.testing.assert_allclose(op.abs_col_sums(), cols, rtol=1e-5)
    mask = (np.arange(W.shape[0]) % 2).astype(np.float32)[:, None]
    np.testing.assert_allclose(op.abs_col_sums(mask), np.stack([mask[:, 0] @ d for d in dense], 1), rtol=1e-5)


def test_zero_attenuation_is_exactly_the_plain_projector(small):
    geom, W, _ = small
    T1 = transmissions(np.zeros((3, 16, 16)), geom, DetectorGeometry.preset("super-x"))
    assert np.all(T1 == 1.0)
    op, plain = AttenuatedOperator(W, T1), MatrixOperator(W)
    x = np.random.default_rng(2).random((W.shape[1], 3)).astype(np.float32)
    y = np.random.default_rng(3).random((W.shape[0], 3)).astype(np.float32)
    np.testing.assert_array_equal(op.forward(x), plain.forward(x))
    np.testing.assert_allclose(op.adjoint(y), plain.adjoint(y), rtol=1e-6)


def test_sirt_and_pdhg_run_unchanged_and_recover_attenuated_data(small):
    geom, W, T = small
    op = AttenuatedOperator(W, T)
    truth = np.zeros((16, 16, 3), np.float32)
    truth[5:11, 5:11] = 1.0
    truth = truth.reshape(-1, 3)
    b = op.forward(truth)
    res = sirt(op, b, 300)
    assert np.linalg.norm(op.forward(res.x) - b) < 0.05 * np.linalg.norm(b)
    pd = pdhg([Term(op, WeightedL2(b))], 300, n_cols=3)
    assert np.linalg.norm(op.forward(pd.x) - b) < 0.05 * np.linalg.norm(b)


def test_bad_inputs_are_refused(small):
    geom, W, T = small
    with pytest.raises(ValueError, match="does not fit"):
        AttenuatedOperator(W, T[:, :-1])
    with pytest.raises(ValueError, match="mode"):
        transmissions(np.zeros((1, 16, 16)), geom, DetectorGeometry.preset("single"), mode="2d")
    with pytest.raises(ValueError, match="n_slices"):
        transmissions(np.zeros((1, 15, 16)), geom, DetectorGeometry.preset("single"))


def test_azimuth_90_points_along_increasing_detector_bins():
    # the convention the directions rely on: ASTRA's bins increase along u = (-sin, cos) in (z, x)
    n = 21
    geom = TiltGeometry([-50.0, 0.0, 35.0], n)
    W = astra_matrix(geom).toarray().reshape(geom.n_tilts, n, n, n)  # (tilt, bin, z, x)
    d = detector_directions(DetectorGeometry(0.0, 90.0, 0.1), geom.angles_deg)[:, 0]
    c = (n - 1) / 2
    for z, x in ((3, 15), (17, 4)):
        for t in range(geom.n_tilts):
            expected = c + d[t, 1] * (z - c) + d[t, 2] * (x - c)
            assert abs(np.argmax(W[t, :, z, x]) - expected) <= 0.5 + 1e-9


@pytest.mark.parametrize("mode", ["3d", "slice"])
def test_compiled_sweep_is_the_reference_sweep(mode):
    """The compiled transmissions against exp(-path_integrals) (numpy) per tilt and detector, bit for bit.

    Non-cubic volumes (5 slices, 7 nm apart against the grid's 3 nm pixel) so every dominant axis and
    both sweep orders occur; a 4-D stack returns each field's own result.
    """
    rng = np.random.default_rng(7)
    geom = TiltGeometry(np.arange(-70.0, 71.0, 10.0), 12, 3.0)
    mus = rng.random((2, 5, 12, 12)) * 0.05
    det = DetectorGeometry.preset("super-x")
    T = transmissions(mus, geom, det, mode=mode, slice_nm=7.0, per_detector=True)
    assert T.shape == (2, 4, geom.n_tilts, 144, 5) and T.dtype == np.float32
    dirs = detector_directions(det, geom.angles_deg)
    for f in range(2):
        for t in range(geom.n_tilts):
            for k in range(4):
                d, scale = dirs[t, k].copy(), 1.0
                if mode == "slice":
                    scale, d[0] = 1.0 / np.hypot(d[1], d[2]), 0.0
                ref = np.exp(-scale * path_integrals(mus[f], d, (7.0, 3.0, 3.0))).astype(np.float32)
                np.testing.assert_array_equal(T[f, k, t], ref.reshape(5, 144).T)
    mean = transmissions(mus[1], geom, det, mode=mode, slice_nm=7.0)
    ref = np.tensordot(det.weights.astype(np.float32), T[1], axes=1)
    np.testing.assert_allclose(mean, ref, rtol=1e-6)
