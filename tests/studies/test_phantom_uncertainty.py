"""The phantom study's core / shell standard errors (issue 15): added keys, unchanged values."""

from __future__ import annotations

import numpy as np
import pytest

from chemtomo.report.phantom_report import write_report
from chemtomo.studies.paper_phantom import StudyConfig, run_study
from chemtomo.studies.phantom_uncertainty import bootstrap_core_shell
from chemtomo.studies.problem import make_problem, study_factors
from chemtomo.studies.solvers import sweep_for


def _cfg(**kw) -> StudyConfig:
    """A tiny study: 32 pixels, 9 tilts, one dose, the two SIRT methods."""
    return StudyConfig(n_pixels=32, pixel_nm=4.5, angles_deg=tuple(np.arange(-60.0, 60.1, 15.0)), refine=2,
                       eds_n=(10, 20), hebt_n=(20,), alphas=(0.7,), doses=(1.0,),
                       methods=("eds_sirt", "hebt_sirt"), **kw)


@pytest.mark.parametrize("name, chosen", [("eds_sirt", {"n": 20}), ("hebt_sirt", {"n": 20, "alpha": 0.7})])
def test_bootstrap_core_shell_measured_column_and_seeded(name, chosen):
    """Column 0 of the batched solve reproduces the sweep's numbers exactly; the SE is positive and seeded."""
    cfg = _cfg()
    p = make_problem(cfg, 1.0, study_factors(cfg), 0)
    ref = next(c["metrics"] for c in sweep_for(name)(p, cfg, lambda *a: None) if c["params"] == chosen)
    b = bootstrap_core_shell(p, cfg, name, chosen, 4, seed=3)
    assert b["core_Au"] == ref["core_Au"] and b["shell_Au"] == ref["shell_Au"]
    # counting noise of a 32-pixel slice at the paper's dose: well above 0, well below the contrast 0.6
    assert 1e-4 < b["core_Au_se"] < 0.1 and 1e-4 < b["shell_Au_se"] < 0.1
    assert bootstrap_core_shell(p, cfg, name, chosen, 4, seed=3) == b


def test_study_adds_se_without_changing_values(tmp_path):
    """With replicas, best gains *_se keys and the report shows value +- SE; every other number is the same."""
    without, _ = run_study(_cfg(replicas=0), jobs=1)
    with_se, kept = run_study(_cfg(replicas=3), jobs=1)
    for name in ("eds_sirt", "hebt_sirt"):
        a, b = without["methods"][name]["best"], with_se["methods"][name]["best"]
        assert "core_Au_se" not in a and b["core_Au_se"] > 0 and b["shell_Au_se"] > 0
        assert b["bootstrap"]["replicas"] == 3 and b["bootstrap"]["core_Au"] == b["core_Au"]  # one seed
        assert {k: v for k, v in b.items() if k not in ("core_Au_se", "shell_Au_se", "bootstrap")} == a
        assert with_se["methods"][name]["sweep"] == without["methods"][name]["sweep"]
    text = write_report(with_se, tmp_path, []).read_text()
    b = with_se["methods"]["eds_sirt"]["best"]
    assert f"| {b['core_Au']:.4f} +- {b['core_Au_se']:.4f} |" in text
    text0 = write_report(without, tmp_path, []).read_text()
    assert " +- " not in text0
