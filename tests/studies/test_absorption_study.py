"""The absorption study (issue 14): metrics keys and structure, the summary's arithmetic, the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_benchmark import _cli

from chemtomo.pipeline.absorption import reconstruct_absorption_corrected
from chemtomo.pipeline.volume import reconstruct_series
from chemtomo.report.absorption import absorption_figure, absorption_table
from chemtomo.report.benchmark import write_benchmark
from chemtomo.studies.absorption import AbsorptionStudyConfig, run_absorption_study, summarise_absorption

ENTRY_KEYS = {"mse_fraction_inside", "region_means", "truth_region_means", "outer_iterations", "seconds"}


def tiny(**kw) -> AbsorptionStudyConfig:
    """10 voxels across a 300 nm field, 5 tilts, noiseless, EDS-SIRT at 20 iterations, at most 2 outer iterations."""
    base = dict(n=10, angles_deg=(-60.0, -30.0, 0.0, 30.0, 60.0), noise=False, params={"eds_sirt": {"n_iter": 20}},
                max_outer=2, label="tiny")
    return AbsorptionStudyConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def run():
    return run_absorption_study(tiny(), reconstruct_series, reconstruct_absorption_corrected)


def test_keys_and_structure(run):
    """absorption.<specimen>.uncorrected / .corrected, each with the issue's keys; region -> {element: value}."""
    study = run["absorption"]
    assert list(study) == ["oxide_supported"]
    e = study["oxide_supported"]
    assert e["light_element"] == "O" and e["light_line"] == "O_Ka" and e["method"] == "eds_sirt"
    assert list(e["methods"]) == ["eds_sirt"]
    for which in ("uncorrected", "corrected"):
        entry = e[which]
        assert ENTRY_KEYS <= set(entry)
        assert entry == e["methods"]["eds_sirt"][which]
        for key in ("region_means", "truth_region_means"):
            assert set(entry[key]) == {"metal", "interface", "support"}
            for means in entry[key].values():
                assert set(means) == {"Al", "O", "Pt"}
        assert entry["truth_region_means"]["support"]["O"] == pytest.approx(0.4707, abs=1e-3)  # Al2O3: 48/102
        assert entry["seconds"] > 0 and np.isfinite(entry["mse_fraction_inside"])
    assert e["uncorrected"]["outer_iterations"] == 0
    # the floor: the same specimen without absorption, the uncorrected threshold, scored alike
    assert ENTRY_KEYS <= set(e["no_absorption"]) and e["no_absorption"] == e["methods"]["eds_sirt"]["no_absorption"]
    c = run["absorption_summary"]["cases"]["oxide_supported"]
    assert c["mse_ratio_no_absorption"] == pytest.approx(
        e["no_absorption"]["mse_fraction_inside"] / e["uncorrected"]["mse_fraction_inside"])
    assert len(e["corrected"]["predicted_changes"]) == e["corrected"]["outer_iterations"]
    assert 1 <= e["corrected"]["outer_iterations"] <= tiny().max_outer
    assert len(e["corrected"]["changes"]) == e["corrected"]["outer_iterations"]
    assert e["cost_ratio"] == pytest.approx(e["corrected"]["seconds"] / e["uncorrected"]["seconds"])
    # the light line loses the most; Pt La barely anything (the simulation test pins ~20 % for O Ka)
    f = e["absorbed_fraction"]
    assert set(f) == {"Al_Ka", "O_Ka", "Pt_La"} and 0 < f["Pt_La"] < f["Al_Ka"] < f["O_Ka"] < 1
    assert e["light_absorbed_in_band"] == (0.1 <= f["O_Ka"] <= 0.4)
    assert run["absorption_slices"]["oxide_supported"]["truth"].shape == (10, 10)
    json.dumps(run["absorption_config"])


def test_correction_moves_the_light_element_towards_the_truth(run):
    e = run["absorption"]["oxide_supported"]
    truth = e["corrected"]["truth_region_means"]["support"]["O"]
    before, after = (e[w]["region_means"]["support"]["O"] for w in ("uncorrected", "corrected"))
    assert abs(after - truth) < abs(before - truth)


def test_summary_arithmetic():
    def entry(o_support, mse, outer=0):
        means = {"support": {"O": o_support, "Pt": 0.0}, "metal": {"O": 0.0, "Pt": 1.0}}
        return {"mse_fraction_inside": mse, "region_means": means, "outer_iterations": outer, "converged": True,
                "truth_region_means": {"support": {"O": 0.47, "Pt": 0.0}, "metal": {"O": 0.0, "Pt": 1.0}}}

    study = {"s": {"light_element": "O", "light_absorbed_in_band": True, "cost_ratio": 2.0,
                   "uncorrected": entry(0.40, 0.009), "corrected": entry(0.46, 0.0027, 3)}}
    s = summarise_absorption(study)
    c = s["cases"]["s"]
    assert c["light_regions"] == ["support"]  # the metal holds no O
    assert c["mse_ratio"] == pytest.approx(0.3)
    assert c["light_region_error_uncorrected"] == pytest.approx(0.07)
    assert c["light_region_error_corrected"] == pytest.approx(0.01)
    assert all(s["acceptance"].values()) and len(s["acceptance"]) == 4


def test_refuses_bad_config():
    with pytest.raises(ValueError, match="specimens"):
        tiny(specimens=("nope",))
    with pytest.raises(ValueError, match="detectors"):
        tiny(detectors="six")
    with pytest.raises(ValueError, match="field_nm"):
        tiny(field_nm=-1.0)


def test_report_and_figure(run, tmp_path):
    assert "corrected" in absorption_table(run) and "O_Ka" in absorption_table(run)
    assert len(absorption_figure(run).axes) == 4  # truth, uncorrected, corrected and the colour bar
    files = write_benchmark(run, tmp_path)
    assert {f.name for f in files} == {"metrics.json", "report.md", "absorption_fractions.png"}
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert ENTRY_KEYS <= set(m["absorption"]["oxide_supported"]["corrected"])
    assert "## Absorption (issue 14)" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_cli_study_absorption(tmp_path):
    out = tmp_path / "a"
    proc = _cli("benchmark", "--study", "absorption", "--quick", "--out", str(out), "--n", "10")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert set(m) >= {"absorption", "absorption_config", "absorption_summary"} and "suite" not in m
    assert m["absorption_config"]["n"] == 10 and m["absorption_config"]["label"] == "quick"
    assert (out / "absorption_fractions.png").exists()
