"""A HAADF at tilts of its own beside sparse EDS (issue 16): the data model, operators, solvers, r_A fit.

Reference values are independent of the code under test: adjoints by the dot test,
the per-modality operators against their dense matrices built block by block, the
response ratios against the physics' prediction (noiseless data), the solvers'
gain against the same solve with the HAADF restricted to the EDS tilts.
"""

import logging

import numpy as np
import pytest

from chemtomo.geometry import SHARED_TILT_TOL_DEG, TiltGeometry, match_tilts, sinogram_to_columns
from chemtomo.physics import paper_table2
from chemtomo.projector import (
    ChannelMix,
    ChannelSum,
    PerModality,
    RowScale,
    astra_matrix,
    dottest,
    make_modality_operator,
    make_operator,
    shares_geometry,
)
from chemtomo.reconstruct import (
    ChannelData,
    estimate_response_ratios_tilts,
    get_method,
    hebt_data,
    hebt_operator,
    hebt_sirt,
    tv_solve,
)
from chemtomo.reconstruct.fused import _fused_operator
from chemtomo.simulate import Acquisition, core_shell_phantom, simulate_tilt_sets
from chemtomo.tiltseries import TiltSeries

N, PX = 32, 4.5
H_ANGLES = np.linspace(-60.0, 60.0, 31)
E_ANGLES = H_ANGLES[::5]  # 7 tilts, each one of the HAADF's


def _series(rng, n_e=7, n_h=31, **kw):
    e = rng.random((n_e, 4, 16)).astype(np.float32)
    h = rng.random((n_h, 4, 16)).astype(np.float32) + 0.1
    return TiltSeries(np.linspace(-60, 60, n_e), 1.0, eds={"A": e}, haadf=h,
                      haadf_angles_deg=np.linspace(-60, 60, n_h), **kw)


# ----------------------------------------------------------------------------- the data model

def test_series_keeps_each_modality_at_its_own_angles(rng):
    e = rng.random((7, 4, 16)).astype(np.float32)
    h = rng.random((31, 4, 16)).astype(np.float32)
    ha = np.linspace(-60, 60, 31)
    order = rng.permutation(31)
    s = TiltSeries(np.linspace(-60, 60, 7)[::-1], 1.0, eds={"A": e}, haadf=h[order], haadf_angles_deg=ha[order])
    np.testing.assert_array_equal(s.haadf_angles, ha)  # sorted, the HAADF with them
    np.testing.assert_array_equal(s.haadf, h)
    np.testing.assert_array_equal(s.eds["A"], e[::-1])
    assert (s.n_eds_tilts, s.n_haadf_tilts, s.shape) == (7, 31, (7, 4, 16))
    assert not s.shares_angles
    ie, ih = s.shared_tilts()
    np.testing.assert_array_equal(ih, np.arange(0, 31, 5))
    assert s.geometry().n_tilts == 7 and s.haadf_geometry().n_tilts == 31
    sub = s.select_slices(1, 3)
    np.testing.assert_array_equal(sub.haadf_angles, ha)
    assert sub.haadf.shape == (31, 2, 16)


def test_equal_angle_sets_are_one_set_bit_for_bit(rng):
    e = rng.random((7, 4, 16)).astype(np.float32)
    h = rng.random((7, 4, 16)).astype(np.float32)
    a = np.linspace(-60, 60, 7)
    s = TiltSeries(a, 1.0, eds={"A": e}, haadf=h, haadf_angles_deg=a.copy())
    ref = TiltSeries(a, 1.0, eds={"A": e}, haadf=h)
    assert s.haadf_angles_deg is None and s.shares_angles
    np.testing.assert_array_equal(s.haadf, ref.haadf)
    np.testing.assert_array_equal(s.haadf_angles, a)


@pytest.mark.parametrize("kw, match", [
    ({"haadf_angles_deg": np.linspace(-60, 60, 7) + 0.001, "n_h": 7}, "one tilt set recorded twice"),
    ({"haadf_angles_deg": np.r_[np.linspace(-60, 60, 31)[:-1], 0.0]}, "repeat"),
    ({"haadf_angles_deg": np.linspace(-1.0, 1.0, 31)}, "radians"),
    ({"haadf_angles_deg": np.linspace(-95, 95, 31)}, "within"),
    ({"haadf_angles_deg": np.linspace(-60, 60, 30)}, "HAADF has 31 images but there are 30 HAADF tilt angles"),
])
def test_nonsense_haadf_angle_sets_are_refused(rng, kw, match):
    kw = dict(kw)
    n_h = kw.pop("n_h", 31)
    e = rng.random((7, 4, 16))
    with pytest.raises(ValueError, match=match):
        TiltSeries(np.linspace(-60, 60, 7), 1.0, eds={"A": e}, haadf=rng.random((n_h, 4, 16)), **kw)


def test_haadf_angles_need_a_haadf_and_an_eds_line(rng):
    with pytest.raises(ValueError, match="no HAADF stack"):
        TiltSeries(np.linspace(-60, 60, 7), 1.0, eds={"A": rng.random((7, 4, 16))},
                   haadf_angles_deg=np.linspace(-60, 60, 31))
    with pytest.raises(ValueError, match="HAADF-only series has one tilt set"):
        TiltSeries(np.linspace(-60, 60, 7), 1.0, haadf=rng.random((31, 4, 16)),
                   haadf_angles_deg=np.linspace(-60, 60, 31))
    with pytest.raises(ValueError, match="haadf_angles_deg"):  # the fix is named
        TiltSeries(np.linspace(-60, 60, 7), 1.0, eds={"A": rng.random((7, 4, 16))}, haadf=rng.random((31, 4, 16)))


def test_bimodal_methods_refuse_eds_beyond_the_haadf_range(rng):
    e = rng.random((7, 4, 16)) + 0.1
    s = TiltSeries(np.linspace(-60, 60, 7), 1.0, eds={"A": e}, haadf=rng.random((31, 4, 16)) + 0.1,
                   haadf_angles_deg=np.linspace(-40, 40, 31))
    s.check_for_reconstruction(needs_haadf=False)  # EDS-only methods do not use the HAADF
    with pytest.raises(ValueError, match=r"EDS tilt\(s\) \[-60.0, 60.0\] lie beyond the HAADF's range"):
        s.check_for_reconstruction(needs_haadf=True)
    two = TiltSeries(np.linspace(-60, 60, 7), 1.0, eds={"A": e}, haadf=rng.random((2, 4, 16)) + 0.1,
                     haadf_angles_deg=[-60.0, 60.0])
    with pytest.raises(ValueError, match="the HAADF"):
        two.check_for_reconstruction(needs_haadf=True)


def test_a_finer_haadf_is_binned_to_the_eds_grid(rng):
    h = rng.random((31, 8, 32)).astype(np.float32)
    s = TiltSeries(np.linspace(-60, 60, 7), 2.0, eds={"A": rng.random((7, 4, 16))}, haadf=h,
                   haadf_angles_deg=np.linspace(-60, 60, 31), haadf_pixel_nm=1.0)
    assert s.haadf.shape == (31, 4, 16) and s.haadf_pixel_nm is None and s.metadata["haadf_binning"] == 2
    ref = h.astype(np.float64).reshape(31, 4, 2, 16, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(s.haadf, ref, rtol=1e-6)
    with pytest.raises(ValueError, match="not an integer"):
        TiltSeries(np.linspace(-60, 60, 7), 2.0, eds={"A": rng.random((7, 4, 16))}, haadf=h,
                   haadf_angles_deg=np.linspace(-60, 60, 31), haadf_pixel_nm=1.5)
    with pytest.raises(ValueError, match="do not cover one field"):
        TiltSeries(np.linspace(-60, 60, 7), 2.0, eds={"A": rng.random((7, 4, 12))}, haadf=h,
                   haadf_angles_deg=np.linspace(-60, 60, 31), haadf_pixel_nm=1.0)


def test_match_tilts_pairs_within_the_tolerance():
    a = np.array([-40.0, 0.0, 20.02, 33.0])
    b = np.array([-40.01, -20.0, 0.0, 20.0, 40.0])
    ia, ib = match_tilts(a, b)
    np.testing.assert_array_equal(ia, [0, 1, 2])
    np.testing.assert_array_equal(ib, [0, 2, 3])
    assert match_tilts(a + 1.0, b)[0].size == 0
    assert SHARED_TILT_TOL_DEG == 0.05


# ----------------------------------------------------------------------------- operators

@pytest.fixture(scope="module")
def pair():
    ge, gh = TiltGeometry(E_ANGLES, N, PX), TiltGeometry(H_ANGLES, N, PX)
    return make_modality_operator(ge, gh), ge, gh


def test_per_modality_operator_is_the_eds_projector_with_the_haadfs(pair):
    W, ge, gh = pair
    assert isinstance(W, PerModality) and not shares_geometry(W)
    assert W.shape == (ge.n_rays, ge.n_voxels) and W.modality("haadf").shape == (gh.n_rays, gh.n_voxels)
    x = np.random.default_rng(0).random((ge.n_voxels, 3)).astype(np.float32)
    np.testing.assert_array_equal(W.forward(x), W.modality("eds").forward(x))
    lhs, rhs = dottest(W, k=3, rng=1)
    assert lhs == pytest.approx(rhs, rel=1e-5)
    W1 = make_operator(ge)
    assert shares_geometry(W1) and W1.modality("haadf") is W1
    with pytest.raises(ValueError, match="modality"):
        W1.modality("xray")


def test_channel_sum_is_the_dense_weighted_sum_and_adjoint(pair):
    W, _, gh = pair
    A = astra_matrix(gh).toarray()
    w = np.array([0.3, 2.0, 1.1])
    op = ChannelSum(W.modality("haadf"), w)
    dense = np.hstack([wc * A for wc in w])
    x = np.random.default_rng(2).random((op.shape[1], 2)).astype(np.float32)
    np.testing.assert_allclose(op.forward(x), dense @ x, rtol=1e-4, atol=1e-4 * np.abs(dense @ x).max())
    lhs, rhs = dottest(op, k=3, rng=3)
    assert lhs == pytest.approx(rhs, rel=1e-5)
    np.testing.assert_allclose(op.abs_row_sums()[:, 0], np.abs(dense).sum(axis=1), rtol=1e-4)
    np.testing.assert_allclose(op.abs_col_sums()[:, 0], np.abs(dense).sum(axis=0), rtol=1e-4, atol=1e-4)


def test_hebt_and_fused_operators_with_two_geometries(pair):
    """Adjoints, and the stacked operators equal their dense block matrices."""
    W, ge, gh = pair
    AE, AH = astra_matrix(ge).toarray(), astra_matrix(gh).toarray()
    k, alpha, c = 2, 0.7, ge.n_tilts / gh.n_tilts
    hebt = hebt_operator(W, k, alpha)
    dense = np.vstack([np.kron((1 - alpha) * np.eye(k), AE), np.kron(c * alpha * np.ones((1, k)), AH)])
    r = np.array([300.0, 500.0])
    d = np.random.default_rng(4).random(k * ge.n_rays + gh.n_rays).astype(np.float32) + 0.1
    fused = RowScale(_fused_operator(W, r), d)
    dense_f = d[:, None] * np.vstack([np.kron(np.diag(1 / r), AE), np.kron(np.ones((1, k)), AH)])
    x = np.random.default_rng(5).random((k * ge.n_voxels, 2)).astype(np.float32)
    for op, A in ((hebt, dense), (fused, dense_f)):
        assert op.shape == A.shape
        ref = A @ x
        np.testing.assert_allclose(op.forward(x), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
        lhs, rhs = dottest(op, k=3, rng=6)
        assert lhs == pytest.approx(rhs, rel=1e-5)
        np.testing.assert_allclose(op.abs_row_sums()[:, 0], np.abs(A).sum(axis=1), rtol=1e-4,
                                   atol=1e-6 * np.abs(A).sum(axis=1).max())
    # one geometry: the shared system, unchanged
    W1 = make_operator(ge)
    assert isinstance(hebt_operator(W1, k, alpha), ChannelMix)
    assert isinstance(_fused_operator(W1, r), ChannelMix)


# ----------------------------------------------------------------------------- solvers on a phantom

@pytest.fixture(scope="module")
def phantom_sets():
    ge, gh = TiltGeometry(E_ANGLES, 48, 3.0), TiltGeometry(H_ANGLES, 48, 3.0)
    factors = paper_table2()
    acq = Acquisition(eds_dose_scale=0.1)
    sim = simulate_tilt_sets(core_shell_phantom(96, 1.5), ge, gh, factors, acq, seed=1)
    clean = simulate_tilt_sets(core_shell_phantom(96, 1.5), ge, gh, factors, acq, noise=False)
    return sim, clean, factors, acq, make_modality_operator(ge, gh), make_operator(ge)


def _fraction_mse_inside(maps, sim, z):
    n = sim.phantom.weight.shape[1]
    x = maps.reshape(len(sim.lines), n, n) / z[:, None, None]
    tot = x.sum(axis=0)
    c = np.where(tot > 0, x / np.where(tot > 0, tot, 1.0), 0.0)
    inside = sim.phantom.regions["particle"]
    return float(np.mean((c[:, inside] - sim.phantom.weight[:, inside]) ** 2))


def test_response_ratios_on_shared_tilts_and_through_the_reconstruction(phantom_sets, caplog):
    """Shared tilts: the measured fit, exact on noiseless data; none shared: via SIRT, within 3 %."""
    _, clean, factors, acq, W, _ = phantom_sets
    s = clean.series
    theory = factors.response_ratios(haadf_dose=acq.haadf_dose, eds_dose=acq.eds_dose,
                                     solid_angle_sr=acq.solid_angle_sr, lines=clean.lines)
    with caplog.at_level(logging.INFO, logger="chemtomo.reconstruct"):
        rr = estimate_response_ratios_tilts(s.haadf, s.eds, s.angles_deg, s.haadf_angles, W=W)
    np.testing.assert_allclose(rr.r, theory, rtol=1e-5)
    assert "7 tilt(s) both modalities share" in rr.basis and rr.as_dict()["basis"] == rr.basis
    assert "share" in caplog.text
    shifted = s.haadf_angles + 1.0
    with pytest.raises(ValueError, match="share none"):
        estimate_response_ratios_tilts(s.haadf, s.eds, s.angles_deg, shifted)
    rr2 = estimate_response_ratios_tilts(s.haadf, s.eds, s.angles_deg, s.haadf_angles, W=W, tol_deg=0.0)
    assert "7 tilt(s)" in rr2.basis  # exactly equal angles match at tolerance 0
    keep = np.arange(31) % 5 != 0  # the HAADF tilts between the EDS ones
    Wn = make_modality_operator(TiltGeometry(E_ANGLES, 48, 3.0), TiltGeometry(H_ANGLES[keep], 48, 3.0))
    rr3 = estimate_response_ratios_tilts(s.haadf[keep], s.eds, s.angles_deg, H_ANGLES[keep], W=Wn)
    assert "no tilt shared" in rr3.basis
    np.testing.assert_allclose(rr3.r, theory, rtol=0.03)


def test_fused_tv_gains_from_the_dense_haadf_and_hebt_does_not_lose(phantom_sets):
    """EDS at 7 tilts, HAADF at 31 vs the HAADF at the same 7: weight fractions inside the particle.

    Measured (this fixture, 0.1x the paper's EDS dose): fused_tv 0.0090 vs 0.0117, hebt_sirt
    0.0196 vs 0.0197 (SIRT adds the HAADF residual to every line alike: the denser HAADF
    sharpens the total, not the split; reconstruct/hebt.py's docstring).
    """
    sim, _, factors, _, W2, W1 = phantom_sets
    s = sim.series
    z = factors.z(sim.lines)
    rr = estimate_response_ratios_tilts(s.haadf, s.eds, s.angles_deg, s.haadf_angles, W=W2)
    eds = np.stack([sinogram_to_columns(s.eds[ln]) for ln in sim.lines])
    dense, sparse = sinogram_to_columns(s.haadf), sinogram_to_columns(s.haadf[::5])
    out = {}
    for name in ("fused_tv", "hebt_sirt"):
        m = get_method(name)
        a = m(W2, ChannelData(sim.lines, eds, dense, rr.r)).maps
        b = m(W1, ChannelData(sim.lines, eds, sparse, rr.r)).maps
        out[name] = (_fraction_mse_inside(a, sim, z), _fraction_mse_inside(b, sim, z))
    assert out["fused_tv"][0] < 0.85 * out["fused_tv"][1], out
    assert out["hebt_sirt"][0] < 1.02 * out["hebt_sirt"][1], out


def test_hebt_pair_of_one_geometry_equals_the_shared_system(phantom_sets):
    """Two projector objects of one geometry: the generic path gives the fused path's maps (float32 rounding)."""
    sim, _, _, _, _, W1 = phantom_sets
    ge = TiltGeometry(E_ANGLES, 48, 3.0)
    Wp = PerModality(W1, make_operator(ge), ge, ge)
    s = sim.series
    eds = [sinogram_to_columns(s.eds[ln]) for ln in sim.lines]
    h = sinogram_to_columns(s.haadf[::5])
    r = np.array([400.0, 600.0])
    a = hebt_sirt(Wp, h, eds, r, 0.8, 50).x
    b = hebt_sirt(W1, h, eds, r, 0.8, 50).x
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * np.abs(b).max())
    assert hebt_data(h, eds, r, 0.8).shape == (3 * ge.n_rays, 1)


def test_fused_tv_takes_the_haadf_on_its_own_rays(phantom_sets):
    sim, _, _, _, W2, _ = phantom_sets
    s = sim.series
    eds = np.stack([sinogram_to_columns(s.eds[ln]) for ln in sim.lines])
    with pytest.raises(ValueError, match=r"haadf must be \(n_rays, m\)"):
        tv_solve(W2, eds, model="fused", mu=0.3, haadf=sinogram_to_columns(s.haadf[::5]), r=[1.0, 1.0], n_iter=2)
    mask_h = np.ones(W2.modality("haadf").shape[0], np.float32)
    mask_h[::3] = 0
    res = tv_solve(W2, eds, model="fused", mu=0.3, haadf=sinogram_to_columns(s.haadf), r=[400.0, 600.0],
                   n_iter=5, haadf_ray_mask=mask_h)
    assert res.x.shape == (2, 48 * 48, 1) and np.all(np.isfinite(res.x))


def test_hebt_columns_with_two_geometries_match_hebt_operator(pair):
    """Cross-validation's per-column alpha operator: each column is hebt_operator's at its alpha; adjoint."""
    from chemtomo.projector import HebtColumnsModal
    from chemtomo.reconstruct.hebt import haadf_row_weight

    W, ge, gh = pair
    alphas = np.array([0.0, 0.5, 0.9], np.float32)
    op = HebtColumnsModal(W.modality("eds"), W.modality("haadf"), 2, alphas, haadf_row_weight(ge.n_rays, gh.n_rays))
    x = np.random.default_rng(7).random((op.shape[1], 3)).astype(np.float32)
    y = op.forward(x)
    for j, a in enumerate(alphas):
        ref = hebt_operator(W, 2, float(a)).forward(x[:, j])
        np.testing.assert_allclose(y[:, j], ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    lhs, rhs = dottest(op, k=3, rng=8)
    assert lhs == pytest.approx(rhs, rel=1e-5)
