"""Tilt-series alignment on projections of known volumes: shifts, tilt-axis rotation and offset.

Volumes are projected with chemtomo's own operator about the vertical axis;
known shifts, a known in-plane rotation and a known axis offset are applied;
the estimators must recover them within the stated tolerances.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from chemtomo.geometry import TiltGeometry, columns_to_sinogram, volume_to_columns
from chemtomo.preprocess.align import (
    Alignment,
    align_tilt_series,
    apply_alignment,
    compare_shifts,
    estimate_shifts,
    estimate_tilt_axis_offset,
    estimate_tilt_axis_rotation,
    tomviz_shifts,
    transform_image,
)
from chemtomo.projector import make_operator

ANGLES = np.arange(-60.0, 60.1, 10.0)


def blob_volume(n: int, n_blobs: int, seed: int, radius=(2.0, 4.0), extent=0.3, centre=False) -> np.ndarray:
    """(slices, z, x) volume of Gaussian blobs within ``extent * n`` of the centre (a compact particle).

    ``centre=True`` moves its centre of mass onto the tilt axis (the grid's centre), so that the
    shifts that align its projections are exactly the ones applied (no free 3-D translation).
    """
    rng = np.random.default_rng(seed)
    c = (n - 1) / 2
    y, z, x = np.indices((n, n, n), dtype=float)
    vol = np.zeros((n, n, n))
    for _ in range(n_blobs):
        p = c + rng.uniform(-extent * n, extent * n, 3)
        r = rng.uniform(*radius)
        vol += rng.uniform(0.5, 2) * np.exp(-((y - p[0]) ** 2 + (z - p[1]) ** 2 + (x - p[2]) ** 2) / (2 * r * r))
    if centre:
        from scipy import ndimage

        vol = ndimage.shift(vol, c - np.array(ndimage.center_of_mass(vol)), order=3, mode="constant")
    return np.clip(vol, 0, None).astype(np.float32)


def project(vol: np.ndarray, angles=ANGLES) -> np.ndarray:
    n = vol.shape[2]
    W = make_operator(TiltGeometry(angles, n, 1.0))
    return columns_to_sinogram(W.forward(volume_to_columns(vol)), angles.size, n)


@pytest.fixture(scope="module")
def particle():
    return project(blob_volume(48, 25, seed=2, radius=(1.5, 3.0), extent=0.18, centre=True))  # inside the field


def displace(stack, shifts, rotation_deg=0.0):
    """What the microscope did: content rotated by ``rotation_deg``, then shifted by ``shifts``."""
    return np.stack([transform_image(im, rotation_deg, s, order=3, mode="constant")
                     for im, s in zip(stack, shifts, strict=True)])


def test_transform_matches_scikit_image_rotate():
    from skimage.transform import rotate

    im = np.zeros((40, 40))
    im[10:15, 25:32] = 1.0
    np.testing.assert_allclose(transform_image(im, 17.0), rotate(im, 17.0, order=1, mode="edge"), atol=1e-12)


@pytest.mark.parametrize("method, tol", [("xcorr", 0.4), ("com", 0.1)])
def test_shifts_recovered(particle, method, tol):
    rng = np.random.default_rng(0)
    true = rng.uniform(-3, 3, (ANGLES.size, 2))
    true[6] = 0  # the 0-degree tilt is the reference
    moved = displace(particle, -true)
    est = estimate_shifts(moved, ANGLES, method)
    est -= est[6]
    err = np.abs(est - true).max()
    assert err < tol, f"{method}: max shift error {err:.3f} px"


def test_tilt_axis_offset_recovered(particle):
    moved = displace(particle, np.tile([0.0, 2.5], (ANGLES.size, 1)))  # axis 2.5 px right of centre
    off, d = estimate_tilt_axis_offset(moved, ANGLES, search_px=5)
    assert d["identifiable"] and off == pytest.approx(-2.5, abs=0.25)
    off0, d0 = estimate_tilt_axis_offset(particle, ANGLES, search_px=5)
    assert off0 == pytest.approx(0.0, abs=0.25)


def test_flat_offset_cost_is_reported_not_trusted():
    flat = np.ones((ANGLES.size, 8, 32), np.float32)
    off, d = estimate_tilt_axis_offset(flat, ANGLES, search_px=4)
    assert not d["identifiable"]
    al = align_tilt_series(flat + 0.01 * np.random.default_rng(0).random(flat.shape), ANGLES, rotation=False)
    assert al.axis_offset_px == 0.0 and "not identifiable" in al.diagnostics["offset"]["note"]


@pytest.mark.parametrize("method, tol", [("patches", 0.3), ("profiles", 0.5)])
def test_tilt_axis_rotation_recovered(method, tol):
    stack = project(blob_volume(128, 60, seed=5, extent=0.33))
    moved = displace(stack, np.zeros((ANGLES.size, 2)), rotation_deg=2.0)  # axis 2 deg off vertical
    rot, d = estimate_tilt_axis_rotation(moved, ANGLES, method=method)
    assert rot == pytest.approx(-2.0, abs=tol), d


def test_align_tilt_series_end_to_end(particle):
    rng = np.random.default_rng(1)
    true = rng.uniform(-2, 2, (ANGLES.size, 2))
    true[6] = 0
    moved = displace(particle, -true + np.array([0.0, 1.5]))  # shifts and an axis offset of 1.5 px
    al = align_tilt_series(moved, ANGLES, rotation=False)
    total = al.total_shifts_px
    np.testing.assert_allclose(total, true - np.array([0.0, 1.5]), atol=0.4)
    aligned = apply_alignment(moved, al)
    assert np.abs(aligned - particle)[:, 8:-8, 8:-8].max() < 0.1 * particle.max()


def test_one_alignment_for_every_channel_and_signals(particle):
    from chemtomo.io.hspy import to_signal

    al = Alignment(ANGLES, np.tile([1.0, -2.0], (ANGLES.size, 1)), 1.0, 0.5, 6, particle.shape[1:], 1.0, "test")
    both = apply_alignment({"HAADF": particle, "Fe_Ka": 2 * particle}, al)
    np.testing.assert_allclose(both["Fe_Ka"], 2 * both["HAADF"], rtol=1e-5)
    sig = apply_alignment(to_signal(particle, ANGLES, 1.0, "HAADF"), al)
    np.testing.assert_allclose(sig.data, both["HAADF"], rtol=1e-6)
    assert sig.metadata.General.title == "HAADF"
    with pytest.raises(ValueError, match="Alignment.binned"):
        apply_alignment(particle[:, ::2, ::2], al)


def test_alignment_json_round_trip_and_binning(tmp_path):
    al = Alignment(ANGLES, np.arange(2 * ANGLES.size).reshape(-1, 2), 1.25, -3.0, 6, (64, 64), 2.0, "xcorr",
                   {"offset": {"cost": [1.0, 2.0]}})
    back = Alignment.load(al.save(tmp_path / "a.json"))
    np.testing.assert_array_equal(back.shifts_px, al.shifts_px)
    assert back.rotation_deg == 1.25 and back.axis_offset_px == -3.0 and back.image_shape == (64, 64)
    b = al.binned(2)
    assert b.image_shape == (32, 32) and b.pixel_nm == 4.0 and b.axis_offset_px == -1.5
    np.testing.assert_array_equal(b.shifts_px, al.shifts_px / 2)


def test_tomviz_convention_and_comparison(tmp_path):
    p = tmp_path / "tv.json"
    p.write_text(json.dumps([[3, 1], [0, 0], [-2, 4]]))  # tomviz [x, y], y pointing up
    tv = tomviz_shifts(p, [-10, 0, 10])
    np.testing.assert_array_equal(tv, [[-1, 3], [0, 0], [-4, -2]])  # (dy, dx)
    c = compare_shifts(tv + [[0.5, 0], [0, 0], [0, 0]], tv, 1)
    assert c["distance_px"].tolist() == [0.5, 0.0, 0.0] and c["max_px"] == 0.5
    with pytest.raises(ValueError, match="holds 3 shifts but 2 angles"):
        tomviz_shifts(p, [0, 10])
