"""napari reader for chemtomo results: layer tuples to scale (no napari needed), and a real headless napari."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from chemtomo.io import write_result
from chemtomo.io.export import export_result_volumes
from chemtomo.io.napari_reader import ELEMENT_COLORMAPS, get_reader, read_layers

PX = 2.5
MANIFEST = Path(__file__).resolve().parents[2] / "src" / "chemtomo" / "napari.yaml"


def test_module_does_not_import_napari():
    import subprocess
    import sys

    code = "import sys, chemtomo.io.napari_reader; assert 'napari' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_result_file_and_folder_to_layers(tmp_path, volume_result_haadf):
    res = volume_result_haadf
    p = write_result(tmp_path / "out" / "result.h5", res)
    for target in (p, str(p), tmp_path / "out"):
        assert get_reader(target) is read_layers
    layers = read_layers(str(tmp_path / "out"))
    names = [kw["name"] for _, kw, _ in layers]
    assert names == ["HAADF volume (hebt_sirt)", "Fe weight fraction", "Pt weight fraction", "Fe atomic fraction",
                     "Pt atomic fraction", "Fe_Ka map (hebt_sirt)", "Pt_La map (hebt_sirt)", "particle mask"]
    types = [t for _, _, t in layers]
    assert types == ["image"] * 7 + ["labels"]
    for data, kw, _ in layers:
        assert kw["scale"] == (PX, PX, PX) and data.shape == (6, 4, 6)  # (z, y, x)
        assert kw["metadata"]["chemtomo"]["axis_units"] == "nm,nm,nm"
    data, kw, _ = layers[1]
    np.testing.assert_array_equal(data, res.composition.weight[0].astype(np.float32).transpose(1, 0, 2))
    assert kw["colormap"] == ELEMENT_COLORMAPS[0] and layers[2][1]["colormap"] == ELEMENT_COLORMAPS[1]
    assert kw["contrast_limits"] == (0.0, 1.0) and kw["visible"] and not layers[3][1]["visible"]
    assert kw["metadata"]["chemtomo"]["units"] == "1"
    assert layers[5][1]["metadata"]["chemtomo"]["units"] == "counts/nm"
    np.testing.assert_array_equal(layers[-1][0], res.composition.mask.astype(np.uint8).transpose(1, 0, 2))


def test_signals_and_stacks_to_layers(tmp_path, volume_result):
    pytest.importorskip("hyperspy.api")
    from chemtomo.io.signals import write_result_signals

    sig = write_result_signals(volume_result, tmp_path / "s", kinds=["weight"])
    stacks = export_result_volumes(volume_result, tmp_path / "e", ["tiff", "ome-tiff", "mrc"], ["weight"])
    for p in sig + stacks:
        assert get_reader(str(p)) is read_layers, p.name
        [(data, kw, kind)] = read_layers(str(p))
        assert kind == "image" and kw["scale"] == (PX, PX, PX), p.name
        assert kw["name"] in ("Fe weight fraction", "Pt weight fraction"), p.name
        el = 0 if kw["name"].startswith("Fe") else 1
        np.testing.assert_array_equal(data, volume_result.composition.weight[el].astype(np.float32).transpose(1, 0, 2))
    assert get_reader([str(p) for p in stacks]) is read_layers


def test_other_files_left_to_other_readers(tmp_path):
    import h5py
    import tifffile

    with h5py.File(tmp_path / "o.h5", "w") as f:
        f["a"] = 1
    tifffile.imwrite(tmp_path / "o.tif", np.zeros((3, 4, 5), np.float32), photometric="minisblack")
    (tmp_path / "t.mrc").write_text("not an mrc")
    for p in ("o.h5", "o.tif", "t.mrc", "missing.h5"):
        assert get_reader(str(tmp_path / p)) is None
    assert get_reader(str(tmp_path)) is None  # a folder without result.h5
    with pytest.raises(ValueError, match="not a chemtomo result"):
        read_layers(str(tmp_path / "o.h5"))


def test_manifest_names_the_reader():
    yaml = pytest.importorskip("yaml")

    m = yaml.safe_load(MANIFEST.read_text())
    assert m["name"] == "chemtomo"
    cmd = m["contributions"]["commands"][0]
    mod, func = cmd["python_name"].split(":")
    assert getattr(importlib.import_module(mod), func) is get_reader
    assert m["contributions"]["readers"][0]["command"] == cmd["id"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # napari's own (pydantic json_encoders, ...)
@pytest.mark.skipif(importlib.util.find_spec("napari") is None or importlib.util.find_spec("npe2") is None,
                    reason="napari and npe2 are not installed (optional, large): the headless napari check runs "
                           "where they are (pip install napari)")
def test_headless_napari_opens_result_to_scale(tmp_path, volume_result_haadf):
    import npe2
    from napari.components import ViewerModel

    pm = npe2.PluginManager.instance()
    pm.discover()  # as napari does at start: the napari.manifest entry point
    if "chemtomo" not in pm:  # not installed with its entry point (an editable tree on PYTHONPATH)
        pm.register(npe2.PluginManifest.from_file(MANIFEST))
    p = write_result(tmp_path / "result.h5", volume_result_haadf)
    readers = [r.plugin_name for r in pm.iter_compatible_readers([str(p)])]
    assert "chemtomo" in readers
    viewer = ViewerModel()
    viewer.open(str(p), plugin="chemtomo")
    names = [ly.name for ly in viewer.layers]
    assert "Fe weight fraction" in names and "particle mask" in names
    for ly in viewer.layers:
        np.testing.assert_allclose(ly.scale, [PX, PX, PX])
    fe = viewer.layers["Fe weight fraction"]
    assert fe.colormap.name == ELEMENT_COLORMAPS[0] and fe.blending == "additive"
    if hasattr(fe, "units"):
        assert [str(u) for u in fe.units] == ["nanometer"] * 3
    stacks = export_result_volumes(volume_result_haadf, tmp_path / "e", ["tiff", "mrc"], ["haadf"])
    for s in stacks:
        viewer.open(str(s), plugin="chemtomo")
        np.testing.assert_allclose(viewer.layers[-1].scale, [PX, PX, PX])
