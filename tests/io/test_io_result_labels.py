"""The HDF5 result: axes, units and the map convention on every dataset; format 1.0 files still read."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from chemtomo.io import atomic_path, read_result, write_result
from chemtomo.io.result import MAP_UNITS_NOTE

PX = 2.5


def test_every_volume_dataset_labelled(tmp_path, volume_result_haadf):
    p = write_result(tmp_path / "r.h5", volume_result_haadf, {"inputs": []})
    with h5py.File(p, "r") as f:
        assert f.attrs["format_version"] == "1.1" and f.attrs["map_units"] == "per_nm"
        assert f.attrs["map_units_note"] == MAP_UNITS_NOTE and "pixel_nm" in f.attrs["map_units_note"]
        assert f.attrs["axis_names"] == "y,z,x" and f.attrs["axis_units"] == "nm,nm,nm"
        seen = []

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.ndim == 3:
                seen.append(name)
                assert obj.attrs["axes"] == "y,z,x", name
                assert [d.label for d in obj.dims] == ["y", "z", "x"], name
                assert obj.attrs["axis_units"] == "nm,nm,nm" and obj.attrs["pixel_nm"] == PX, name
                np.testing.assert_array_equal(obj.attrs["scale_nm"], [PX] * 3)
                assert obj.attrs["units"] and obj.attrs["quantity"] and obj.attrs["long_name"], name

        f.visititems(visit)
        assert sorted(seen) == sorted(["maps/Fe_Ka", "maps/Pt_La", "fractions/weight/Fe", "fractions/weight/Pt",
                                       "fractions/atomic/Fe", "fractions/atomic/Pt", "mask", "haadf"])
        assert f["maps/Fe_Ka"].attrs["units"] == "counts/nm"
        assert f["fractions/weight/Fe"].attrs["units"] == "1"
        assert f["fractions/weight/Fe"].attrs["long_name"] == "Fe weight fraction"
        assert f["maps/Fe_Ka"].attrs["long_name"] == "Fe_Ka map (hebt_sirt)"
        assert f["response_ratios/Fe_Ka"].attrs["units"] == "1"


def test_read_per_pixel_convention(tmp_path, volume_result_haadf):
    res = volume_result_haadf
    p = write_result(tmp_path / "r.h5", res)
    nm, px = read_result(p), read_result(p, map_units="per_pixel")
    assert nm["map_units"] == "per_nm" and px["map_units"] == "per_pixel"
    np.testing.assert_allclose(px["maps"]["Pt_La"], nm["maps"]["Pt_La"] * PX, rtol=1e-6)
    np.testing.assert_allclose(px["haadf"], res.haadf_volume * PX, rtol=1e-6)
    np.testing.assert_array_equal(px["weight"]["Fe"], nm["weight"]["Fe"])
    with pytest.raises(ValueError, match="map_units"):
        read_result(p, map_units="per_um")


def _write_format_10(path, res):
    """A result file exactly as format 1.0 wrote it (no labels, no map_units)."""
    comp = res.composition
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "chemtomo-result"
        f.attrs["format_version"] = "1.0"
        f.attrs["axes"] = "slices,z,x"
        f.attrs["pixel_nm"] = PX
        f.attrs["parameters"] = json.dumps({"method": "hebt_sirt"})
        f.attrs["provenance"] = "{}"
        for i, line in enumerate(res.lines):
            f.create_dataset(f"maps/{line}", data=res.maps[i])
        for kind, arr in (("weight", comp.weight), ("atomic", comp.atomic)):
            for i, el in enumerate(res.elements):
                f.create_dataset(f"fractions/{kind}/{el}", data=arr[i].astype(np.float32))
        f.create_dataset("mask", data=comp.mask.astype(np.uint8))
        g = f.create_group("response_ratios")
        g.attrs["r2"] = 0.99
        g.create_dataset("Fe_Ka", data=1.5)


def test_format_10_files_still_read(tmp_path, volume_result):
    p = tmp_path / "old.h5"
    _write_format_10(p, volume_result)
    back = read_result(p)
    assert back["format_version"] == "1.0" and back["map_units"] == "per_nm" and back["haadf"] is None
    np.testing.assert_array_equal(back["maps"]["Fe_Ka"], volume_result.maps[0])
    np.testing.assert_array_equal(back["mask"], volume_result.composition.mask)
    assert back["response_ratios"] == {"Fe_Ka": 1.5}
    np.testing.assert_allclose(read_result(p, map_units="per_pixel")["maps"]["Fe_Ka"], volume_result.maps[0] * PX,
                               rtol=1e-6)


def test_atomic_path_replaces_a_folder_whole(tmp_path):
    dest = tmp_path / "v.zspy"
    dest.mkdir()
    (dest / "old").write_text("old")
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in dest.iterdir()) == ["new"]
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.mkdir()
        (tmp / "half").write_text("half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in dest.iterdir()) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.zspy"]
