"""Volume stacks for tomviz / napari / ImageJ: TIFF (ImageJ layout) and MRC round trips."""

from __future__ import annotations

import numpy as np
import pytest

from chemtomo.io.export import (
    export_volumes,
    read_volume,
    result_volumes,
    to_zyx,
    write_volume,
)


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


def test_ome_tiff_physical_size(tmp_path, vol):
    import tifffile

    p = write_volume(tmp_path / "w.ome.tif", vol, 0.75, title="Fe weight fraction")
    with tifffile.TiffFile(p) as t:
        assert t.is_ome and t.series[0].axes == "ZYX"
        pix = tifffile.xml2dict(t.ome_metadata)["OME"]["Image"]["Pixels"]
        for ax in "XYZ":
            assert pix[f"PhysicalSize{ax}"] == pytest.approx(0.75) and pix[f"PhysicalSize{ax}Unit"] == "nm"
    back, px = read_volume(p)
    np.testing.assert_array_equal(back, vol)
    assert px == pytest.approx(0.75)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["w.ome.tif"]


def test_export_result_volumes_labelled_and_per_pixel(tmp_path, volume_result_haadf):
    from chemtomo.io.export import export_result, export_result_volumes, volume_info
    from chemtomo.io.result import write_result

    res = volume_result_haadf
    paths = export_result_volumes(res, tmp_path / "a", ["tiff", "ome-tiff", "mrc"], ["maps", "weight", "haadf"],
                                  prefix="hebt_")
    assert len(paths) == 5 * 3
    for p in paths:
        info = volume_info(p)
        assert info["chemtomo"] and info["pixel_nm"] == pytest.approx(2.5), p.name
        assert info["map_units"] == "per_nm" and info["shape"] == (6, 4, 6)
    info = volume_info(tmp_path / "a" / "hebt_weight_Fe.mrc")
    assert (info["title"], info["kind"], info["name"], info["units"]) == ("Fe weight fraction", "weight", "Fe", "1")
    assert volume_info(tmp_path / "a" / "hebt_maps_Fe_Ka.tif")["units"] == "counts/nm"
    back, _ = read_volume(tmp_path / "a" / "hebt_haadf.ome.tif")
    np.testing.assert_array_equal(back, res.haadf_volume)
    # per voxel, from the result file
    h5 = write_result(tmp_path / "r.h5", res)
    pp = export_result(h5, tmp_path / "b", ["mrc"], ["maps"], map_units="per_pixel")
    back, _ = read_volume(pp[0])
    np.testing.assert_allclose(back, res.maps[0] * 2.5, rtol=1e-6)
    assert volume_info(pp[0])["units"] == "counts/voxel" and volume_info(pp[0])["map_units"] == "per_pixel"


def test_failed_export_leaves_nothing(tmp_path, vol, monkeypatch):
    import mrcfile

    def failing(*a, **k):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(mrcfile, "new", failing)
    with pytest.raises(OSError, match="disk full"):
        export_volumes(tmp_path / "e", {"a": vol, "b": vol}, 1.0, ["tiff", "mrc"])
    assert list((tmp_path / "e").iterdir()) == []


def test_foreign_stack_has_no_chemtomo_info(tmp_path, vol):
    import tifffile

    from chemtomo.io.export import volume_info

    tifffile.imwrite(tmp_path / "plain.tif", vol)
    info = volume_info(tmp_path / "plain.tif")
    assert "chemtomo" not in info and np.isnan(info["pixel_nm"])


def test_export_volumes_labels_from_names(tmp_path, vol):
    from chemtomo.io.export import volume_info

    paths = export_volumes(tmp_path, {"weight_Fe": vol, "maps_Fe_Ka": vol, "other": vol}, 1.0, ["mrc"], prefix="m_")
    info = [volume_info(p) for p in paths]
    assert (info[0]["title"], info[0]["kind"], info[0]["name"]) == ("Fe weight fraction", "weight", "Fe")
    assert (info[1]["title"], info[1]["units"]) == ("Fe_Ka map", "counts/nm")
    assert info[2]["title"] == "other" and "kind" not in info[2]
