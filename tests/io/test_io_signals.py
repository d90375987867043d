"""Results as HyperSpy signals: hs.load opens them with named axes in nm, titles, units and provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chemtomo.io import read_result, write_result
from chemtomo.io.signals import result_signals, write_result_signals, zspy_supported

hs = pytest.importorskip("hyperspy.api")
PX = 2.5


def _check_axes(s, px=PX):
    am = s.axes_manager
    assert [a.name for a in am.navigation_axes] == ["y"]
    assert [a.name for a in am.signal_axes] == ["x", "z"]
    for a in am._axes:
        assert a.units == "nm" and a.scale == pytest.approx(px)


def test_hspy_round_trip_every_volume(tmp_path, volume_result_haadf):
    res = volume_result_haadf
    paths = write_result_signals(res, tmp_path / "signals", provenance={"inputs": ["a.hspy"]})
    assert [p.name for p in paths] == ["maps_Fe_Ka.hspy", "maps_Pt_La.hspy", "weight_Fe.hspy", "weight_Pt.hspy",
                                       "atomic_Fe.hspy", "atomic_Pt.hspy", "mask.hspy", "haadf.hspy"]
    assert sorted(p.name for p in (tmp_path / "signals").iterdir()) == sorted(p.name for p in paths)
    s = hs.load(tmp_path / "signals" / "weight_Fe.hspy")  # no reader= needed
    assert isinstance(s, hs.signals.Signal2D) and s.data.shape == (4, 6, 6)
    _check_axes(s)
    np.testing.assert_array_equal(s.data, res.composition.weight[0].astype(np.float32))
    assert s.metadata.General.title == "Fe weight fraction"
    assert s.metadata.Signal.quantity == "Fe weight fraction (1)"
    md = s.metadata.chemtomo
    assert (md.kind, md.name, md.method, md.map_units) == ("weight", "Fe", "hebt_sirt", "per_nm")
    assert md.pixel_nm == PX and md.axes == "y,z,x" and md.elements == "Fe,Pt"
    assert json.loads(md.parameters)["nested"] == {"a": [1, 2]}
    assert json.loads(md.provenance) == {"inputs": ["a.hspy"]}
    assert json.loads(md.response_ratios) == {"Fe_Ka": 1.5, "Pt_La": 2.5}
    m = hs.load(tmp_path / "signals" / "maps_Pt_La.hspy")
    assert m.metadata.General.title == "Pt_La map (hebt_sirt)"
    assert "per nm" in m.metadata.Signal.quantity and "(counts/nm)" in m.metadata.Signal.quantity
    np.testing.assert_array_equal(m.data, res.maps[1])
    h = hs.load(tmp_path / "signals" / "haadf.hspy")
    np.testing.assert_array_equal(h.data, res.haadf_volume)
    mask = hs.load(tmp_path / "signals" / "mask.hspy")
    np.testing.assert_array_equal(mask.data.astype(bool), res.composition.mask)
    every = hs.load(str(tmp_path / "signals" / "*.hspy"))
    assert len(every) == 8
    for sig in every:
        _check_axes(sig)


def test_per_pixel_convention_and_from_result_file(tmp_path, volume_result):
    h5 = write_result(tmp_path / "r.h5", volume_result, {"command": "test"})
    sig = result_signals(h5, ["maps", "weight"], map_units="per_pixel")
    assert sorted(sig) == ["maps_Fe_Ka", "maps_Pt_La", "weight_Fe", "weight_Pt"]
    np.testing.assert_allclose(sig["maps_Fe_Ka"].data, volume_result.maps[0] * PX, rtol=1e-6)
    np.testing.assert_array_equal(sig["weight_Fe"].data, read_result(h5)["weight"]["Fe"])  # fractions unchanged
    assert sig["maps_Fe_Ka"].metadata.chemtomo.map_units == "per_pixel"
    assert sig["maps_Fe_Ka"].metadata.Signal.quantity.endswith("(counts/voxel)")
    assert json.loads(sig["weight_Fe"].metadata.chemtomo.provenance) == {"command": "test"}


def test_zspy_round_trip(tmp_path, volume_result):
    ok, why = zspy_supported()
    if not ok:
        with pytest.raises(ImportError, match="cannot write .zspy"):
            write_result_signals(volume_result, tmp_path, format="zspy")
        assert list(tmp_path.iterdir()) == []
        pytest.skip(f".zspy not writable here (a clear error is raised instead): {why}")
    paths = write_result_signals(volume_result, tmp_path, format="zspy", kinds=["weight", "mask"], prefix="hebt_")
    assert [p.name for p in paths] == ["hebt_weight_Fe.zspy", "hebt_weight_Pt.zspy", "hebt_mask.zspy"]
    s = hs.load(paths[1])
    _check_axes(s)
    assert s.metadata.General.title == "Pt weight fraction"
    np.testing.assert_array_equal(s.data, volume_result.composition.weight[1].astype(np.float32))
    # written again over itself: replaced whole
    write_result_signals(volume_result, tmp_path, format="zspy", kinds=["weight"], prefix="hebt_")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)


def test_failed_write_leaves_nothing(tmp_path, volume_result, monkeypatch):
    from hyperspy.signal import BaseSignal

    real = BaseSignal.save
    calls = {"n": 0}

    def failing(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return real(self, *a, **k)

    monkeypatch.setattr(BaseSignal, "save", failing)
    with pytest.raises(OSError, match="disk full"):
        write_result_signals(volume_result, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_errors(tmp_path, volume_result):
    with pytest.raises(ValueError, match="signal format"):
        write_result_signals(volume_result, tmp_path, format="nxs")
    with pytest.raises(ValueError, match="volume kinds"):
        write_result_signals(volume_result, tmp_path, kinds=["fractions"])
    with pytest.raises(ValueError, match="map_units"):
        write_result_signals(volume_result, tmp_path, map_units="per_angstrom")
    assert list(tmp_path.iterdir()) == []
