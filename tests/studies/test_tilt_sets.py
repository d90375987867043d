"""The tilt-sets study (issue 16): metrics keys and structure, the claim's arithmetic, the report, the command."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from test_benchmark import _cli

from chemtomo.pipeline.volume import reconstruct_series
from chemtomo.report.benchmark import write_benchmark
from chemtomo.report.tilt_sets import tilt_sets_figure, tilt_sets_slices_figure, tilt_sets_table
from chemtomo.simulate.specimens import make_specimen
from chemtomo.simulate.tilt_sets import simulate_specimen_tilt_sets, tilt_set_angles
from chemtomo.studies.benchmark import sweep
from chemtomo.studies.tilt_sets import TiltSetsConfig, run_tilt_sets, summarise_tilt_sets

pytestmark = pytest.mark.filterwarnings("ignore:.*extrapolat")

GRIDS = {"eds_sirt": {"n": (10, 30)}, "hebt_sirt": {"alpha": (0.6,), "n": (10, 30)}, "fused_tv": {"mu": (0.12, 0.24)}}


def tiny(**kw) -> TiltSetsConfig:
    """16 voxels, 2 middle slices, EDS at 5 tilts with the HAADF at 9 or 5, small grids."""
    base = dict(ranges_deg=(70.0, 40.0), doses=(1.0,), cells=((5, 9), (5, 5)),
                methods=("eds_sirt", "hebt_sirt", "fused_tv"), n=16, n_slices=2, auto_slices=2, grids=GRIDS,
                params={"fused_tv": {"n_iter": 20}}, label="tiny")
    return TiltSetsConfig(**{**base, **kw})


def _keys(d, prefix=""):
    """Dotted keys of the leaves of a nested dict."""
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _keys(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


@pytest.fixture(scope="module")
def run():
    return run_tilt_sets(tiny(), reconstruct_series)


def test_keys_and_structure(run):
    """Exactly tilt_sets.<range>.<dose>.<EDSxHAADF>.methods.<method>.<oracle|auto>.mse_fraction_inside."""
    study = run["tilt_sets"]
    assert list(study) == ["70", "40"]
    for rk in study:
        assert list(study[rk]) == ["1"]
        assert list(study[rk]["1"]) == ["5x9", "5x5"]
        for ck, entry in study[rk]["1"].items():
            n_eds, n_haadf = (int(v) for v in ck.split("x"))
            assert len(entry["eds_angles_deg"]) == n_eds and len(entry["haadf_angles_deg"]) == n_haadf
            assert entry["haadf_angles_deg"][-1] == pytest.approx(float(rk))
            assert set(entry["eds_angles_deg"]) <= set(entry["haadf_angles_deg"])
            assert list(entry["methods"]) == ["eds_sirt", "hebt_sirt", "fused_tv"]
            for name, m in entry["methods"].items():
                assert set(m) == {"oracle", "auto", "sweep"}
                for which in ("oracle", "auto"):
                    v = m[which]["mse_fraction_inside"]
                    assert np.isfinite(v) and 0 < v < 0.25
                # the oracle is the sweep's lowest point; no worse than an automatic choice on the grid
                # (the TV rule's mu is off the grid: it may do better)
                grid = GRIDS[name]
                assert m["oracle"]["mse_fraction_inside"] == min(e["mse_fraction_inside"] for e in m["sweep"])
                if "mu" not in grid:
                    assert m["oracle"]["mse_fraction_inside"] <= m["auto"]["mse_fraction_inside"] * (1 + 1e-6)
                assert len(m["sweep"]) == int(np.prod([len(v) for v in grid.values()]))
                # SIRT's choices are grid points; the TV rule scales its CV argmin mu_cv by K/(K-1)
                assert all(m["auto"]["params"][k] in grid[k] for k in grid if k != "mu")
                if "mu" in grid:
                    assert min(grid["mu"]) <= m["auto"]["params"]["mu"] <= 2 * max(grid["mu"])
    keys = set(_keys({"tilt_sets": study}))
    assert "tilt_sets.70.1.5x9.methods.fused_tv.auto.mse_fraction_inside" in keys
    assert "tilt_sets.40.1.5x5.methods.eds_sirt.oracle.mse_fraction_inside" in keys


@pytest.mark.parametrize("method, grid, point", [
    ("eds_sirt", {"n": (5, 12)}, {"n_iter": 5}),
    ("hebt_sirt", {"alpha": (0.6,), "n": (4, 9)}, {"n_iter": 4, "alpha": 0.6}),
    ("fused_tv", {"mu": (0.24,)}, {"mu": 0.24, "n_iter": 15}),
])
def test_sweep_point_equals_reconstruct_series_with_own_haadf_tilts(method, grid, point):
    """The oracle's sweep with the HAADF at 9 tilts and the EDS at 5: a point is reconstruct_series' result."""
    spec = make_specimen("core_shell", 16, 2, 0)
    eds_deg, haadf_deg = tilt_set_angles(70, 5, 9)
    series = simulate_specimen_tilt_sets(spec, eds_deg, haadf_deg, 1.0, elastic="auto").series((7, 9))
    assert not series.shares_angles
    base = {"n_iter": 15} if method == "fused_tv" else None
    got = sweep(series, make_specimen_factors(spec), method, grid, base, mask_method="otsu")[0]
    ref = reconstruct_series(series, make_specimen_factors(spec), method, point, mask_method="otsu")
    np.testing.assert_allclose(got["maps"], ref.maps, rtol=1e-6, atol=1e-6 * float(np.abs(ref.maps).max()))
    np.testing.assert_allclose(got["weight"], ref.composition.weight, atol=1e-6)


def make_specimen_factors(spec):
    """The factors the tilt-set simulation uses for ``spec`` (200 keV, z_A's elastic model for it)."""
    return simulate_specimen_tilt_sets(spec, [-10.0, 0.0, 10.0], [-10.0, 0.0, 10.0], 1.0, noise=False,
                                       elastic="auto").factors


def test_eds_sirt_ignores_the_haadf(run):
    """EDS-SIRT: the same EDS counts (one seed, EDS drawn first) give the same numbers with 9 or 5 HAADF tilts."""
    for rk in ("70", "40"):
        a = run["tilt_sets"][rk]["1"]["5x9"]["methods"]["eds_sirt"]
        b = run["tilt_sets"][rk]["1"]["5x5"]["methods"]["eds_sirt"]
        for ea, eb in zip(a["sweep"], b["sweep"], strict=True):
            assert ea["params"] == eb["params"]
            assert ea["mse_fraction_inside"] == pytest.approx(eb["mse_fraction_inside"], rel=1e-5)
        assert a["auto"]["mse_fraction_inside"] == pytest.approx(b["auto"]["mse_fraction_inside"], rel=1e-5)


def test_slices_and_report(run, tmp_path):
    sl = run["tilt_sets_slices"]
    assert list(sl) == ["70", "40"]
    for e in sl.values():
        assert e["cell"] == "5x9" and e["element"] == "Au"  # (11, 71) absent: the first cell
        assert np.shape(e["truth"]) == (16, 16)
        assert list(e["methods"]) == ["eds_sirt", "hebt_sirt", "fused_tv"]
        assert all(np.shape(v) == (16, 16) for v in e["methods"].values())
    assert tilt_sets_table(run).count("| +-40 | x1 |") == 6
    fig = tilt_sets_figure(run)
    assert len(fig.axes) == 3 * 2  # a row per method, a column per range and dose
    fig.savefig(io.BytesIO(), format="png")
    fig = tilt_sets_slices_figure(run)
    assert len([a for a in fig.axes if a.get_images()]) == 2 * 4  # truth + 3 methods per range
    fig.savefig(io.BytesIO(), format="png")
    files = write_benchmark(run, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "report.md", "tilt_sets_mse.png",
                                                           "tilt_sets_slices.png"]
    assert files[0].name == "metrics.json"
    m = json.loads(files[0].read_text())
    assert m["tilt_sets"]["40"]["1"]["5x9"]["methods"]["fused_tv"]["auto"]["mse_fraction_inside"] == \
        run["tilt_sets"]["40"]["1"]["5x9"]["methods"]["fused_tv"]["auto"]["mse_fraction_inside"]
    text = (tmp_path / "report.md").read_text()
    assert "## Tilt sets" in text and "not measured" in text and "![tilt_sets_slices.png]" in text


def _entry(auto, oracle):
    return {"methods": {"fused_tv": {"auto": {"mse_fraction_inside": auto},
                                     "oracle": {"mse_fraction_inside": oracle}}}}


def test_summary_claim_arithmetic():
    """Issue 16's claim on hand-made numbers: ratios to 71x71 and 11x11, and whether it holds."""
    study = {"70": {"1": {"11x71": _entry(1.2e-3, 1.0e-3), "71x71": _entry(1.0e-3, 0.9e-3),
                          "11x11": _entry(3.0e-3, 2.0e-3)},
                    "0.1": {"11x71": _entry(2.0e-3, 1.0e-3), "71x71": _entry(1.0e-3, 1.0e-3),
                            "11x11": _entry(3.0e-3, 3.0e-3)}}}
    s = summarise_tilt_sets(study)
    c = s["claim"]["70"]["1"]
    assert c["fused_tv_auto_11x71_over_71x71"] == pytest.approx(1.2)
    assert c["fused_tv_auto_11x71_over_11x11"] == pytest.approx(0.4)
    assert c["fused_tv_oracle_11x71_over_11x11"] == pytest.approx(0.5)
    assert c["holds"] is True
    assert s["claim"]["70"]["0.1"]["holds"] is False  # 2.0 > 1.5 and 0.67 > 0.5
    assert list(s["acceptance"].values()) == [True]
    assert s["cases"]["70"]["1"]["11x11"]["winner_auto"] == "fused_tv"


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="specimen"):
        tiny(specimen="teapot")
    with pytest.raises(ValueError, match="ranges_deg"):
        tiny(ranges_deg=(95.0,))
    with pytest.raises(ValueError, match="n_eds <= n_haadf"):
        tiny(cells=((11, 5),))
    with pytest.raises(ValueError, match="distinct"):
        tiny(cells=((5, 9), (5, 9)))
    with pytest.raises(ValueError, match="at least 3"):
        tiny(cells=((2, 9),))
    with pytest.raises(ValueError, match="n_slices"):
        tiny(n_slices=40)


def test_cli_tilt_sets_only(tmp_path):
    out = tmp_path / "t"
    proc = _cli("benchmark", "--study", "tilt_sets", "--quick", "--out", str(out), "--methods", "eds_sirt",
                "--n", "16", "--slices", "2", "--cells", "5x9", "5x5", "--ranges", "40")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert "suite" not in m
    assert list(m["tilt_sets"]["40"]["1"]) == ["5x9", "5x5"]
    assert set(m["tilt_sets"]["40"]["1"]["5x9"]["methods"]["eds_sirt"]) == {"oracle", "auto", "sweep"}
    proc = _cli("benchmark", "--study", "tilt_sets", "--out", str(out), "--cells", "11by71")
    assert proc.returncode == 2 and "11by71" in proc.stderr


def test_esf_failure_falls_back_to_three_class_otsu(monkeypatch):
    """An ESF fit without an edge: the cell's result takes ESF_FALLBACK's (three-class Otsu) mask and says so.

    Reference: ``reconstruct_series`` with ``mask_method="multiotsu"``, scored the same way.
    """
    import chemtomo.quantify as quantify_module
    from chemtomo.studies.benchmark import Truth, score
    from chemtomo.studies.tilt_sets import _reconstruct_scored

    def no_edge(*args, **kwargs):
        raise ValueError("no particle-background edge in the volume-threshold curve (test)")

    spec = make_specimen("core_shell", 16, 2, 0)
    eds_deg, haadf_deg = tilt_set_angles(70, 5, 9)
    series = simulate_specimen_tilt_sets(spec, eds_deg, haadf_deg, 1.0, elastic="auto").series((7, 9))
    factors = make_specimen_factors(spec)
    truth = Truth.of(spec, (7, 9))
    monkeypatch.setattr(quantify_module, "esf_threshold", no_edge)
    got, res = _reconstruct_scored(reconstruct_series, series, factors, truth, "eds_sirt", {"n_iter": 10}, "esf")
    assert got["mask"] == "multiotsu (the ESF fit failed)"
    ref = reconstruct_series(series, factors, "eds_sirt", {"n_iter": 10}, mask_method="multiotsu")
    want = score(truth, np.asarray(ref.maps), np.asarray(ref.composition.weight), list(ref.elements))
    assert got["mse_fraction_inside"] == want["mse_fraction_inside"]
    with pytest.raises(ValueError, match="no particle-background edge"):  # only the ESF mask is replaced
        _reconstruct_scored(lambda *a, **k: no_edge(), series, factors, truth, "eds_sirt", {}, "otsu")
