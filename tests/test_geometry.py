import numpy as np
import pytest

from chemtomo.geometry import (
    TiltGeometry,
    columns_to_sinogram,
    columns_to_volume,
    sinogram_to_columns,
    volume_to_columns,
)


def test_geometry_counts(small_geom):
    assert small_geom.n_tilts == 13
    assert small_geom.n_rays == 13 * 24
    assert small_geom.n_voxels == 24 * 24
    r = small_geom.refined(4)
    assert r.n_grid == 96 and r.grid_pixel_nm == pytest.approx(1.5 / 4) and r.n_pixels == 24


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"angles_deg": [], "n_pixels": 10}, "empty"),
        ({"angles_deg": [0, 0, 10], "n_pixels": 10}, "duplicated"),
        ({"angles_deg": [0, 95], "n_pixels": 10}, r"\[-90, 90\]"),
        ({"angles_deg": [0, np.nan], "n_pixels": 10}, "finite"),
        ({"angles_deg": [0, 10], "n_pixels": 10, "pixel_nm": -1}, "pixel_nm"),
        ({"angles_deg": [0, 10], "n_pixels": 1}, "n_pixels"),
    ],
)
def test_geometry_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TiltGeometry(**kwargs)


def test_column_conversions_round_trip(rng):
    stack = rng.random((7, 3, 11)).astype(np.float32)  # tilts, slices, pixels
    cols = sinogram_to_columns(stack)
    assert cols.shape == (7 * 11, 3)
    # column s is slice s's sinogram, tilt-major like ASTRA's (n_angles, n_det)
    np.testing.assert_array_equal(cols[:, 1].reshape(7, 11), stack[:, 1, :])
    np.testing.assert_array_equal(columns_to_sinogram(cols, 7, 11), stack)
    vol = rng.random((3, 5, 5))
    np.testing.assert_array_equal(columns_to_volume(volume_to_columns(vol), 5), vol)
