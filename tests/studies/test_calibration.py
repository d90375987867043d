"""The uncertainty calibration study (issue 15): interval definitions, voxel classes, metrics layout."""

from __future__ import annotations

import numpy as np
import pytest

from chemtomo.pipeline.uncertainty import bootstrap_uncertainty
from chemtomo.pipeline.volume import reconstruct_series
from chemtomo.reconstruct.bootstrap import BIAS_SCALES, summarize
from chemtomo.studies.benchmark import BenchmarkConfig, Truth
from chemtomo.studies.calibration import (
    DEFINITIONS,
    UncertaintyStudyConfig,
    intervals,
    run_uncertainty_study,
    voxel_classes,
)


def test_intervals_match_summarize():
    """The study's intervals are summarize's, from the percentile bounds and the bias."""
    rng = np.random.default_rng(3)
    samples, value, bias = rng.normal(size=(50, 6)), rng.normal(size=6), rng.normal(size=6)
    p = summarize(samples, value)
    c = 1.7  # a bias_calibrated factor
    for d in DEFINITIONS:
        s = summarize(samples, value, method=d, bias=None if d == "percentile" else bias,
                      bias_bound=c * np.abs(bias) if d in ("bias_calibrated", "bias_scaled") else None)
        lo, hi = intervals(p.low, p.high, bias, d, factor=c)
        np.testing.assert_allclose((lo, hi), (s.low, s.high), rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="definition must be one of"):
        intervals(p.low, p.high, bias, "bca")


def test_uniform_interior_of_a_two_phase_cube():
    """A cube split in two phases: interior voxels are >= 2 voxels from the surface and the interface."""
    n = 12
    part = np.zeros((n, n, n), bool)
    part[1:-1, 1:-1, 1:-1] = True
    w = np.zeros((2, n, n, n))
    w[0][part] = 0.3
    w[0][:, :, 6:][part[:, :, 6:]] = 0.8
    w[1][part] = 1 - w[0][part]
    t = Truth(["A", "B"], w, w, part, {}, (0, n))
    inner = voxel_classes(t, 2, 0.02)
    assert inner[6, 6, 3] and inner[6, 6, 8] and not inner[6, 6, 5] and not inner[6, 6, 6]
    assert not inner[2, 6, 3] and inner[3, 6, 3]  # 2 voxels from the particle's edge (index 0 and 11 are vacuum)
    assert not voxel_classes(t, 2, 0.6)[2, 6, 3] and voxel_classes(t, 2, 0.6)[6, 6, 6]


def test_study_layout_on_a_tiny_case():
    """uncertainty.<specimen>.<method> has the issue's keys; coverages are shares, the SE ratio positive."""
    cfg = BenchmarkConfig(specimens=("core_shell",), doses=(1.0,), methods=("eds_sirt",), n=16, n_slices=4,
                          angles_deg=tuple(np.arange(-70.0, 70.1, 10.0)), label="tiny")
    suite = {"core_shell": {"1": {"methods": {"eds_sirt": {"auto": {"params": {"n": 30}}}}}}}
    u = run_uncertainty_study(cfg, UncertaintyStudyConfig(seeds=2, replicas=3), reconstruct_series,
                              bootstrap_uncertainty, suite)
    r = u["core_shell"]["eds_sirt"]
    assert r["params"] == {"n_iter": 30} and r["seeds"] == 2 and r["replicas"] == 3
    assert {"coverage_region_90", "coverage_voxel_90", "se_over_seed_spread"} <= set(r)
    assert set(r["coverage"]) == set(DEFINITIONS)
    for d, c in r["coverage"].items():
        assert set(c) == {"region", "region_interior", "voxel", "voxel_interior", "voxel_edge"}
        assert all(np.isnan(v) or 0 <= v <= 1 for v in c.values()), (d, c)
    # widening never loses coverage
    assert r["coverage"]["bias_widened"]["voxel"] >= r["coverage"]["percentile"]["voxel"]
    assert r["coverage"]["bias_widened"]["region"] >= r["coverage"]["percentile"]["region"]
    # the headline: bias_scaled with the method's calibrated scales (eds_sirt has them)
    assert r["headline_definition"] == "bias_scaled" and r["bias_scale_voxel"] == BIAS_SCALES["eds_sirt"]
    # its region means are bias_calibrated's
    assert r["coverage"]["bias_scaled"]["region"] == r["coverage"]["bias_calibrated"]["region"]
    assert r["se_over_seed_spread"] > 0 and r["coverage_voxel_90"] == r["coverage"]["bias_scaled"]["voxel"]
    assert r["coverage_region_90"] == r["coverage"]["bias_scaled"]["region"]
    assert set(r["regions"]) >= {"core", "shell"}
    # bias_calibrated: the factors found per realisation, >= 0; the widened intervals contain the percentile ones
    assert len(r["calibration_factors"]["voxel"]) == 2 and min(r["calibration_factors"]["region"]) >= 0
    assert r["coverage"]["bias_calibrated"]["voxel"] >= r["coverage"]["percentile"]["voxel"]
    with pytest.raises(ValueError, match="seeds must be 0"):
        UncertaintyStudyConfig(seeds=1)


def test_study_falls_back_to_three_class_otsu_when_the_esf_fit_fails(monkeypatch):
    """No ESF edge (``esf_threshold`` made to raise its no-edge error): the study's mask is ESF_FALLBACK's."""
    import chemtomo.quantify as quantify_module

    def no_edge(*args, **kwargs):
        raise ValueError("no particle-background edge in the volume-threshold curve (test)")

    monkeypatch.setattr(quantify_module, "esf_threshold", no_edge)
    cfg = BenchmarkConfig(specimens=("core_shell",), doses=(1.0,), methods=("eds_sirt",), n=16, n_slices=4,
                          angles_deg=tuple(np.arange(-70.0, 70.1, 10.0)), label="tiny")
    suite = {"core_shell": {"1": {"methods": {"eds_sirt": {"auto": {"params": {"n": 30}}}}}}}
    u = run_uncertainty_study(cfg, UncertaintyStudyConfig(seeds=2, replicas=3), reconstruct_series,
                              bootstrap_uncertainty, suite)
    assert u["core_shell"]["eds_sirt"]["mask"] == "multiotsu"
