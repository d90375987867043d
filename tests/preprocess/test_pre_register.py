"""HAADF-to-EDS registration and shadowing normalisation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from chemtomo.preprocess.register import (
    centre_of_mass,
    estimate_shift,
    normalise_shadowing,
    register_haadf_to_eds,
    shift_stack,
)


def blobs(shape=(48, 56), seed=0):
    rng = np.random.default_rng(seed)
    im = np.zeros(shape)
    for _ in range(6):
        cy, cx = rng.uniform(12, shape[0] - 12), rng.uniform(12, shape[1] - 12)
        y, x = np.indices(shape)
        im += rng.uniform(1, 3) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * rng.uniform(2, 4) ** 2))
    return im


@pytest.mark.parametrize("method, tol", [("xcorr", 0.1), ("com", 0.05)])
def test_estimate_shift_recovers_a_known_shift(method, tol):
    ref = blobs()
    mov = ndimage.shift(ref, (-2.3, 3.6), order=3, mode="constant")
    s = estimate_shift(mov, ref, method)
    np.testing.assert_allclose(s, (2.3, -3.6), atol=tol)


def test_centre_of_mass_ignores_a_dark_offset():
    im = np.zeros((20, 30))
    im[5, 20] = 10.0
    assert centre_of_mass(im + 7.0) == pytest.approx((5.0, 20.0))


def test_register_haadf_to_eds_per_tilt():
    rng = np.random.default_rng(4)
    eds = np.stack([blobs(seed=i) for i in range(4)])
    true = rng.uniform(-3, 3, size=(4, 2))
    haadf = 1000 * np.stack([ndimage.shift(e, -t, order=3, mode="constant")
                             for e, t in zip(eds, true, strict=True)]) + 50
    reg, shifts = register_haadf_to_eds(haadf, rng.poisson(20 * eds).astype(float), "xcorr")
    np.testing.assert_allclose(shifts, true, atol=0.25)
    assert reg.shape == haadf.shape
    with pytest.raises(ValueError, match="exceed 0.5 px"):
        register_haadf_to_eds(haadf, eds, "xcorr", max_shift_px=0.5)


def test_shift_stack_keeps_counts_non_negative():
    a = np.random.default_rng(0).poisson(3, (2, 10, 12)).astype(np.float32)
    b = shift_stack(a, [[0.5, -1.25], [0.0, 0.0]])
    assert b.min() >= 0 and np.array_equal(b[1], a[1])
    with pytest.raises(ValueError, match="shifts must be"):
        shift_stack(a, [[0, 0]])


def test_normalise_shadowing_common_totals_and_factors():
    rng = np.random.default_rng(1)
    base = rng.random((1, 8, 8)) + 0.1
    scale = np.array([1.0, 0.7, 0.9, 1.2])
    eds = {"Fe_Ka": base * scale[:, None, None], "O_Ka": 2 * base * scale[::-1, None, None]}
    out, f = normalise_shadowing(eds)
    for ln in eds:
        tot = out[ln].sum(axis=(1, 2))
        np.testing.assert_allclose(tot, tot.mean(), rtol=1e-5)
        np.testing.assert_allclose(out[ln], eds[ln] * f[ln][:, None, None], rtol=1e-5)
    np.testing.assert_allclose(f["Fe_Ka"], scale.mean() / scale, rtol=1e-6)


def test_normalise_shadowing_slab_keeps_the_cosine_growth():
    ang = np.array([-40.0, 0.0, 40.0])
    base = np.ones((1, 4, 4))
    slab = base / np.cos(np.deg2rad(ang))[:, None, None]  # a slab: projected amount grows as 1/cos
    out, f = normalise_shadowing({"Fe_Ka": slab * np.array([0.8, 1.0, 1.1])[:, None, None]}, "slab", ang)
    ratio = out["Fe_Ka"].sum(axis=(1, 2)) / slab.sum(axis=(1, 2))
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-6)  # only the shadowing was removed
    with pytest.raises(ValueError, match="needs the tilt angles"):
        normalise_shadowing({"Fe_Ka": slab}, "slab")


def test_normalise_shadowing_refuses_empty_tilts():
    a = np.ones((3, 4, 4))
    a[1] = 0
    with pytest.raises(ValueError, match="no net counts at tilt"):
        normalise_shadowing({"Fe_Ka": a})
    with pytest.raises(ValueError, match="target must be one of"):
        normalise_shadowing({"Fe_Ka": np.ones((3, 4, 4))}, "median")


def test_signals_in_signals_out():
    from chemtomo.io.hspy import to_signal

    s = to_signal(np.ones((3, 6, 6)), [-10, 0, 10], 2.0, "Fe_Ka")
    out, f = normalise_shadowing({"Fe_Ka": s})
    assert out["Fe_Ka"].axes_manager.signal_axes[0].scale == 2.0
    reg, sh = register_haadf_to_eds(to_signal(np.stack([blobs()] * 3), [-10, 0, 10], 2.0, "HAADF"),
                                    np.stack([blobs()] * 3), "com")
    assert reg.metadata.General.title == "HAADF" and np.allclose(sh, 0, atol=1e-6)
