"""Volume stacks for tomviz / napari / ImageJ: TIFF (ImageJ layout) and MRC round trips."""

from __future__ import annotations

import numpy as np
import pytest

from chemtomo.io.export import export_volumes, read_volume, result_volumes, to_zyx, write_volume


@pytest.fixture
def vol():
    rng = np.random.default_rng(3)
    return rng.random((5, 7, 9)).astype(np.float32)  # (slices, z, x)


@pytest.mark.parametrize("suffix", [".tif", ".mrc"])
def test_round_trip_with_voxel_size(tmp_path, vol, suffix):
    p = write_volume(tmp_path / f"weight_Fe{suffix}", vol, 2.5, title="weight_Fe")
    back, px = read_volume(p)
    np.testing.assert_array_equal(back, vol)
    assert px == pytest.approx(2.5)
    assert not [q for q in tmp_path.iterdir() if q.name.startswith(".")]  # no temporary left


def test_files_hold_zyx_pages_imagej_readable(tmp_path, vol):
    import mrcfile
    import tifffile

    write_volume(tmp_path / "v.tif", vol, 1.5)
    with tifffile.TiffFile(tmp_path / "v.tif") as t:
        assert t.is_imagej
        assert t.series[0].axes == "ZYX" and t.series[0].shape == (7, 5, 9)  # pages step through depth z
        assert t.imagej_metadata["unit"] == "nm" and t.imagej_metadata["spacing"] == 1.5
        np.testing.assert_array_equal(t.asarray(), to_zyx(vol))
    write_volume(tmp_path / "v.mrc", vol, 1.5)
    with mrcfile.open(tmp_path / "v.mrc") as m:
        assert m.data.shape == (7, 5, 9) and m.voxel_size.x == pytest.approx(15.0)  # Angstrom


def test_errors(tmp_path, vol):
    with pytest.raises(ValueError, match=".tif/.tiff or .mrc"):
        write_volume(tmp_path / "v.png", vol, 1.0)
    with pytest.raises(ValueError, match="positive"):
        write_volume(tmp_path / "v.tif", vol, 0.0)
    with pytest.raises(ValueError, match="slices, z, x"):
        write_volume(tmp_path / "v.tif", vol[0], 1.0)
    with pytest.raises(ValueError, match="export formats"):
        export_volumes(tmp_path, {"a": vol}, 1.0, ["png"])
    assert not list(tmp_path.iterdir())


def test_export_volumes_and_result_volumes(tmp_path, vol):
    res = {"maps": {"Fe_Ka": vol}, "weight": {"Fe": vol / 2}, "atomic": {"Fe": vol / 3},
           "mask": vol > 0.5}
    vols = result_volumes(res, ["maps", "weight", "mask"])
    assert sorted(vols) == ["maps_Fe_Ka", "mask", "weight_Fe"]
    paths = export_volumes(tmp_path, vols, 2.0, ["tiff", "mrc"], prefix="hebt_")
    assert sorted(p.name for p in paths) == sorted(
        f"hebt_{n}{s}" for n in ("maps_Fe_Ka", "mask", "weight_Fe") for s in (".tif", ".mrc"))
    with pytest.raises(ValueError, match="export kinds"):
        result_volumes(res, ["fractions"])
