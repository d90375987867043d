"""The uncertainty reaches the user's files and pictures (issue 15): the ``/uncertainty`` group, signals, figures."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from chemtomo.io import read_result, result_signals, write_result
from chemtomo.io.uncertainty import region_rows, uncertainty_dict
from chemtomo.pipeline.uncertainty import SpreadSet, Uncertainty
from chemtomo.reconstruct.bootstrap import Spread
from chemtomo.report.uncertainty import (
    composition_table_markdown,
    draw_uncertainty_figures,
    fig_error_maps,
    fig_region_compositions,
)

PIXEL_NM = 2.5  # the voxel size of conftest's result


def _spread(value, rng, kind="bootstrap", n=4):
    value = np.asarray(value, np.float64)
    se = 0.01 + 0.05 * rng.random(value.shape)
    return Spread(value, value + 0.001, se, value - 1.6 * se, value + 1.7 * se, 0.9, kind, n)


def _spread_set(res, rng, kind="bootstrap"):
    comp = res.composition
    vols = {"maps": np.asarray(res.maps), "weight": comp.weight, "atomic": comp.atomic}
    ss = SpreadSet(*(_spread(vols[q], rng, kind) for q in ("maps", "weight", "atomic")), {}, kind)
    core = np.zeros_like(comp.mask)
    core[1:3] = comp.mask[1:3]
    for name, m in (("particle", comp.mask), ("core", core)):
        ss.regions[name] = {q: _spread(vols[q][:, m].mean(axis=1), rng, kind) for q in vols}
    return ss


def make_uncertainty(res, jackknife=False) -> Uncertainty:
    """A hand-built Uncertainty of the conftest result ``res`` (4 replicas, seed 3)."""
    rng = np.random.default_rng(11)
    return Uncertainty(res, _spread_set(res, rng), _spread_set(res, rng, "jackknife") if jackknife else None,
                       4, 3, 0.9, "counts", 1.0, None, ["a note", "another"], {"measured": 1.0, "replicas": 2.0})


def test_round_trip_of_the_uncertainty_group(tmp_path, volume_result):
    unc = make_uncertainty(volume_result, jackknife=True)
    res = unc.result
    p = write_result(tmp_path / "r.h5", res, {"inputs": []}, uncertainty=unc)
    back = read_result(p)
    u = back["uncertainty"]
    assert (u["replicas"], u["seed"], u["interval"], u["source"]) == (4, 3, 0.9, "counts")
    assert u["notes"] == ["a note", "another"] and u["haadf_sigma"] is None and u["method"] == "hebt_sirt"
    assert u["seconds"] == {"measured": 1.0, "replicas": 2.0}
    for kind, ss in (("bootstrap", unc.bootstrap), ("jackknife", unc.jackknife)):
        for q, names in (("maps", res.lines), ("weight", res.elements), ("atomic", res.elements)):
            s = getattr(ss, q)
            for i, n in enumerate(names):
                for st in ("se", "low", "high"):
                    np.testing.assert_allclose(u[kind][q][n][st], np.float32(getattr(s, st)[i]), rtol=0)
        for region in ("particle", "core"):
            for i, el in enumerate(res.elements):
                got = u[kind]["regions"][region]["weight"][el]
                s = ss.regions[region]["weight"]
                assert got["value"] == pytest.approx(s.value[i]) and got["se"] == pytest.approx(s.se[i])
                assert (got["low"], got["high"]) == pytest.approx((s.low[i], s.high[i]))
    rows = region_rows(back["uncertainty"])
    assert rows == region_rows(unc) and len(rows) == 4 and rows[0]["region"] == "particle"
    assert unc.table("weight")[0]["se"] == pytest.approx(rows[0]["se"])
    # maps follow the map convention; fractions do not
    pp = read_result(p, map_units="per_pixel")["uncertainty"]["bootstrap"]
    np.testing.assert_allclose(pp["maps"]["Fe_Ka"]["se"], u["bootstrap"]["maps"]["Fe_Ka"]["se"] * PIXEL_NM, rtol=1e-6)
    assert pp["regions"]["core"]["maps"]["Pt_La"]["se"] == \
        pytest.approx(u["bootstrap"]["regions"]["core"]["maps"]["Pt_La"]["se"] * PIXEL_NM)
    np.testing.assert_array_equal(pp["weight"]["Fe"]["se"], u["bootstrap"]["weight"]["Fe"]["se"])


def test_uncertainty_datasets_are_labelled(tmp_path, volume_result):
    unc = make_uncertainty(volume_result)
    p = write_result(tmp_path / "r.h5", unc.result, uncertainty=unc)
    with h5py.File(p, "r") as f:
        g = f["uncertainty"]
        assert g.attrs["replicas"] == 4 and g.attrs["seed"] == 3 and g.attrs["source"] == "counts"
        assert "jackknife" not in g
        ds = g["bootstrap/weight/Fe/se"]
        assert ds.attrs["axes"] == "y,z,x" and [d.label for d in ds.dims] == ["y", "z", "x"]
        assert ds.attrs["units"] == "1" and ds.attrs["pixel_nm"] == PIXEL_NM
        assert ds.attrs["statistic"] == "se" and ds.attrs["spread"] == "bootstrap"
        assert "standard error" in ds.attrs["quantity"] and "Fe weight fraction" in ds.attrs["long_name"]
        assert g["bootstrap/maps/Fe_Ka/high"].attrs["units"] == "counts/nm"
        assert "90 % interval" in g["bootstrap/atomic/Pt/low"].attrs["quantity"]


def test_results_without_uncertainty_still_read(tmp_path, volume_result):
    p = write_result(tmp_path / "r.h5", volume_result)
    with h5py.File(p, "r") as f:
        assert "uncertainty" not in f
    back = read_result(p)
    assert back["uncertainty"] is None and set(back["weight"]) == {"Fe", "Pt"}
    assert draw_uncertainty_figures(back, tmp_path / "fig") == []
    assert not any(k.startswith("se_") for k in result_signals(volume_result))


def test_signals_hold_the_weight_standard_errors(tmp_path, volume_result):
    pytest.importorskip("hyperspy")
    unc = make_uncertainty(volume_result)
    p = write_result(tmp_path / "r.h5", unc.result, uncertainty=unc)
    for source in (unc, p):
        sig = result_signals(source)
        assert {"se_weight_Fe", "se_weight_Pt"} <= set(sig) and "se_atomic_Fe" not in sig
        s = sig["se_weight_Fe"]
        np.testing.assert_allclose(s.data, np.float32(unc.bootstrap.weight.se[0]), rtol=0)
        assert "standard error" in s.metadata.General.title and s.metadata.chemtomo.units == "1"
        assert s.axes_manager.navigation_axes[0].scale == PIXEL_NM


def test_markdown_table():
    rows = [{"region": "core", "element": "Fe", "value": 0.5, "se": 0.012, "low": 0.48, "high": 0.52,
             "interval": 0.9}]
    md = composition_table_markdown(rows)
    assert md.splitlines()[0] == "| region | Fe wt % |"
    assert "| core | 50.0 ± 1.2 (48.0–52.0) |" in md and "90 % interval" in md
    assert composition_table_markdown([]) == ""
    small = [{**rows[0], "se": 0.00031, "low": 0.4995, "high": 0.5006}]
    assert "| core | 50.000 ± 0.031 (49.950–50.060) |" in composition_table_markdown(small)


def test_figures_build_on_their_own_canvas(tmp_path, volume_result):
    unc = make_uncertainty(volume_result)
    res = unc.result
    w = {el: res.composition.weight[i] for i, el in enumerate(res.elements)}
    se = {el: unc.bootstrap.weight.se[i] for i, el in enumerate(res.elements)}
    fig = fig_error_maps(w, se, res.composition.mask, pixel_nm=PIXEL_NM, interval=0.9)
    assert len(fig.axes) == 2 * 2 + 4  # two images and two colour bars per element
    fig = fig_region_compositions(region_rows(unc), truth={"core": {"Fe": 0.5}})
    assert fig.axes[0].get_legend() is not None
    with pytest.raises(ValueError, match="slice_index"):
        fig_error_maps(w, se, res.composition.mask, slice_index=99)
    with pytest.raises(ValueError, match="no region rows"):
        fig_region_compositions([])
    p = write_result(tmp_path / "r.h5", res, uncertainty=unc)
    paths = draw_uncertainty_figures(read_result(p), tmp_path / "fig", method="hebt_sirt")
    assert [q.name for q in paths] == ["uncertainty_error_maps.png", "uncertainty_regions.png",
                                       "uncertainty_table.md"]
    assert all(q.stat().st_size > 0 for q in paths)
    assert "± " in paths[-1].read_text(encoding="utf-8")


def test_show_draws_the_uncertainty_without_pyplot(tmp_path, volume_result):
    unc = make_uncertainty(volume_result)
    p = write_result(tmp_path / "r.h5", unc.result, uncertainty=unc)
    code = f"""
import sys, matplotlib
matplotlib.use("pdf")
from chemtomo.report.volume import draw_result_figures
paths = draw_result_figures(r"{p}", r"{tmp_path / 'figs'}")
assert matplotlib.get_backend() == "pdf", matplotlib.get_backend()
assert "matplotlib.pyplot" not in sys.modules
print(sorted(q.name for q in paths if q.name.startswith("uncertainty")))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(["uncertainty_error_maps.png", "uncertainty_regions.png",
                                       "uncertainty_table.md"])


def test_uncertainty_dict_refuses_other_objects():
    with pytest.raises(ValueError, match="Uncertainty"):
        uncertainty_dict(object())


def test_bias_round_trips_when_estimated(tmp_path, volume_result):
    """A bootstrap with the plug-in bias (bias=True) stores it per voxel and per region; files without it read."""
    from dataclasses import replace

    unc = make_uncertainty(volume_result)
    rng = np.random.default_rng(5)
    ss = unc.bootstrap

    def with_bias(s):
        b = 0.01 * rng.standard_normal(np.shape(s.value))
        return replace(s, bias=b, bias_bound=np.abs(b) + 0.001, method="bias_widened")

    ss = SpreadSet(with_bias(ss.maps), with_bias(ss.weight), with_bias(ss.atomic),
                   {r: {q: with_bias(s) for q, s in g.items()} for r, g in ss.regions.items()}, "bootstrap")
    unc = replace(unc, bootstrap=ss)
    back = read_result(write_result(tmp_path / "r.h5", unc.result, uncertainty=unc))["uncertainty"]
    assert back["interval_method"] == "bias_widened"
    for i, el in enumerate(unc.result.elements):
        np.testing.assert_allclose(back["bootstrap"]["weight"][el]["bias"], np.float32(ss.weight.bias[i]), rtol=0)
        got = back["bootstrap"]["regions"]["core"]["weight"][el]
        assert (got["bias"], got["bias_bound"]) == pytest.approx((ss.regions["core"]["weight"].bias[i],
                                                                  ss.regions["core"]["weight"].bias_bound[i]))
    assert {"bias", "bias_bound"} <= set(region_rows(back)[0])
    plain = read_result(write_result(tmp_path / "p.h5", volume_result, uncertainty=make_uncertainty(volume_result)))
    assert plain["uncertainty"]["interval_method"] == "percentile"
    assert "bias" not in plain["uncertainty"]["bootstrap"]["weight"]["Fe"]
