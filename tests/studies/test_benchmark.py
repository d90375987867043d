"""The specimen-suite benchmark (issue 13): sweep = pipeline, metrics layout, sane values, the command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from chemtomo.pipeline.volume import reconstruct_series
from chemtomo.report.benchmark import benchmark_figure, benchmark_table, write_benchmark
from chemtomo.simulate.specimens import make_specimen, simulate_series
from chemtomo.studies.benchmark import BenchmarkConfig, Truth, run_benchmark, score, sub_series, sweep

ANGLES = np.arange(-70.0, 70.1, 10.0)


def tiny(**kw) -> BenchmarkConfig:
    """16 voxels, 2 middle slices, one specimen and dose, small grids."""
    base = dict(specimens=("core_shell",), doses=(1.0,), methods=("eds_sirt",), n=16, n_slices=2,
                angles_deg=tuple(ANGLES), grids={"eds_sirt": {"n": (10, 30, 60)}}, auto_slices=2, label="tiny")
    return BenchmarkConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def case():
    spec = make_specimen("core_shell", 16, 2, 0)
    sim = simulate_series(spec, ANGLES, dose_scale=1.0, beam_kev=200.0, seed=0, elastic="auto")
    return spec, sim, sub_series(sim.series, 7, 9)


@pytest.mark.parametrize("method, grid, point", [
    ("eds_sirt", {"n": (5, 12)}, {"n_iter": 5}),
    ("hebt_sirt", {"alpha": (0.6,), "n": (4, 9)}, {"n_iter": 4, "alpha": 0.6}),
    ("fused_tv", {"mu": (0.24,)}, {"mu": 0.24, "n_iter": 15}),
])
def test_sweep_point_equals_reconstruct_series(case, method, grid, point):
    """A sweep point (a snapshot for SIRT) is reconstruct_series' result at that point."""
    _, sim, series = case
    base = {"n_iter": 15} if method == "fused_tv" else None
    got = sweep(series, sim.factors, method, grid, base, mask_method="otsu")[0]
    ref = reconstruct_series(series, sim.factors, method, point, mask_method="otsu")
    np.testing.assert_allclose(got["maps"], ref.maps, rtol=1e-6, atol=1e-6 * float(np.abs(ref.maps).max()))
    np.testing.assert_allclose(got["weight"], ref.composition.weight, atol=1e-6)


def test_truth_cut_and_region_means(case):
    spec, _, _ = case
    full = Truth.of(spec)
    assert full.region_means() == spec.region_means()
    cut = Truth.of(spec, (7, 9))
    assert cut.weight.shape == (2, 2, 16, 16)
    assert cut.regions["core"].shape == (2, 16, 16)


def test_run_benchmark_tiny_layout_and_values(tmp_path):
    """metrics.json has issue 13's layout with sane values; the truth's region means are the specimen's."""
    cfg = tiny(n_slices=None)
    metrics = run_benchmark(cfg, reconstruct_series)
    files = write_benchmark(metrics, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inside_mse.png", "metrics.json", "report.md"]
    assert files[0].name == "metrics.json"
    m = json.loads((tmp_path / "metrics.json").read_text())
    spec = make_specimen("core_shell", 16, 2, 0)
    truth = spec.region_means()
    entry = m["suite"]["core_shell"]["1"]["methods"]["eds_sirt"]
    for which in ("best", "auto"):
        e = entry[which]
        assert {"mse_fraction_inside", "region_means", "truth_region_means", "params", "ssim"} <= set(e)
        assert 0 < e["mse_fraction_inside"] < 0.25
        assert e["truth_region_means"] == truth
        assert set(e["region_means"]) == set(truth)
        for reg in e["region_means"].values():
            assert set(reg) == {"Ag", "Au"}
            assert all(0 <= v <= 1 for v in reg.values())
        assert e["params"]["n"] in (10, 30, 60)
    assert entry["best"]["mse_fraction_inside"] <= entry["auto"]["mse_fraction_inside"] + 1e-12
    assert m["slices"]["range"] == [0, 16]
    assert "eds_sirt" in m["summary"]["cases"]["core_shell"]["1"]["auto_over_best"]
    assert "| core_shell | x1 | EDS-SIRT | best |" in (tmp_path / "report.md").read_text()


def test_report_pieces_on_a_middle_block():
    cfg = tiny(doses=(1.0, 0.1))
    metrics = run_benchmark(cfg, reconstruct_series)
    assert metrics["slices"]["range"] == [7, 9]
    assert "middle" in metrics["slices"]["note"]
    spec = make_specimen("core_shell", 16, 2, 0)
    want = Truth.of(spec, (7, 9)).region_means()
    got = metrics["suite"]["core_shell"]["0.1"]["methods"]["eds_sirt"]["best"]["truth_region_means"]
    assert json.dumps(got) == json.dumps(want)  # NaN for a region absent from the block compares equal here
    assert benchmark_table(metrics).count("| core_shell |") == 4
    fig = benchmark_figure(metrics)
    assert len(fig.axes) == 2


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="specimens"):
        tiny(specimens=("teapot",))
    with pytest.raises(ValueError, match="n_slices"):
        tiny(n_slices=40)
    with pytest.raises(ValueError, match="doses"):
        tiny(doses=(0.0,))


def test_oracle_keeps_the_fine_grid_and_auto_runs_the_rule_grid():
    """The full benchmark's oracle sweeps fused-TV's 7-point mu grid; its auto runs the rule's 4-point grid.

    A configuration's own grid (the quick run's) replaces both.
    """
    full = BenchmarkConfig(methods=("fused_tv", "fused_huber", "hebt_sirt"))
    assert full.grid("fused_tv") == {"mu": (0.06, 0.085, 0.12, 0.17, 0.24, 0.34, 0.48)}
    assert full.rule_grid("fused_tv") == {"mu": (0.06, 0.12, 0.24, 0.48)}
    assert full.rule_grid("fused_huber") == full.grid("fused_huber")
    assert full.rule_grid("hebt_sirt") == full.grid("hebt_sirt")
    d = full.as_dict()
    assert d["grids"]["fused_tv"]["mu"] == [0.06, 0.085, 0.12, 0.17, 0.24, 0.34, 0.48]
    assert d["rule_grids"]["fused_tv"]["mu"] == [0.06, 0.12, 0.24, 0.48]
    quick = BenchmarkConfig.quick()
    assert quick.grid("fused_tv") == quick.rule_grid("fused_tv") == {"mu": (0.06, 0.12, 0.24, 0.48)}
    assert quick.grid("hebt_sirt") == quick.rule_grid("hebt_sirt")


def _cli(*args):
    return subprocess.run([sys.executable, "-c", "import sys; from chemtomo.cli import main; sys.exit(main())", *args],
                          capture_output=True, text=True, timeout=600)


def test_cli_help_and_tiny_run(tmp_path):
    proc = _cli("benchmark", "--help")
    assert proc.returncode == 0 and "--quick" in proc.stdout
    out = tmp_path / "b"
    proc = _cli("benchmark", "--quick", "--out", str(out), "--specimens", "core_shell", "--doses", "1",
                "--methods", "eds_sirt", "--n", "16", "--slices", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert list(m["suite"]) == ["core_shell"]
    assert set(m["suite"]["core_shell"]["1"]["methods"]["eds_sirt"]) >= {"best", "auto"}
    # the uncertainty calibration (issue 15), quick: 4 realisations x 10 replicas
    u = m["uncertainty"]["core_shell"]["eds_sirt"]
    assert {"coverage_region_90", "coverage_voxel_90", "se_over_seed_spread"} <= set(u)
    assert m["uncertainty_config"]["seeds"] == 4 and u["seeds"] == 4
    proc = _cli("benchmark", "--out", str(out), "--specimens", "teapot")
    assert proc.returncode == 2 and "teapot" in proc.stderr


def _four_voxel_truth():
    """A 2 x 2 Au0.8Ag0.2 particle in a 4 x 4 slice: ``(Truth, its weight fractions)``."""
    particle = np.zeros((1, 4, 4), bool)
    particle[0, 1:3, 1:3] = True
    w_au = np.where(particle, 0.8, 0.0)
    truth_w = np.stack([w_au, np.where(particle, 1 - w_au, 0.0)])
    return Truth(["Au", "Ag"], truth_w, truth_w.copy(), particle, {"all": particle}, (0, 1)), truth_w


def test_score_splits_the_masks_missed_voxels():
    """A reconstruction exact on its mask, which misses 2 particle voxels: the inside MSE is theirs alone."""
    truth, truth_w = _four_voxel_truth()
    got = truth_w.copy()
    got[:, 0, 1, 1:3] = 0.0  # the mask misses two of the four particle voxels
    got[:, 0, 0, 0] = (0.5, 0.5)  # and adds one outside
    s = score(truth, got, got, ["Au", "Ag"])
    assert s["mse_fraction_on_mask"] == 0.0
    assert s["particle_missed_by_mask"] == pytest.approx(0.5)
    assert s["mask_outside_particle"] == pytest.approx(0.25)
    # per element: 2 of 4 voxels off by their truth fraction (0.8, 0.2)
    assert s["mse_fraction_inside"] == pytest.approx(np.mean([2 * 0.8**2 / 4, 2 * 0.2**2 / 4]))


def test_particle_or_mask_score_charges_the_masks_extra_voxels():
    """The union score: a mask voxel in vacuum costs its fractions squared, as a missed particle voxel does.

    The inside MSE does not see it (a mask grown past the particle is free there); reference
    values by hand over the 4 particle voxels and the 1 added.
    """
    truth, truth_w = _four_voxel_truth()
    got = truth_w.copy()
    got[:, 0, 1, 1:3] = 0.0  # misses two particle voxels
    got[:, 0, 0, 0] = (0.5, 0.5)  # adds one in vacuum (truth fractions 0 there)
    s = score(truth, got, got, ["Au", "Ag"])
    au = (2 * 0.8**2 + 0.5**2) / 5
    ag = (2 * 0.2**2 + 0.5**2) / 5
    assert s["mse_fraction_particle_or_mask"] == pytest.approx((au + ag) / 2, rel=1e-12)
    # a mask that covers the particle and twelve vacuum voxels: inside MSE 0, the union score not
    grown = np.where(truth.particle, truth_w, 0.5)
    s = score(truth, grown, grown, ["Au", "Ag"])
    assert s["mse_fraction_inside"] == 0.0
    assert s["mse_fraction_particle_or_mask"] == pytest.approx(12 * 0.5**2 / 16, rel=1e-12)


def test_mask_edge_level_reaches_the_sweep_and_the_automatic_result(case):
    """With ``mask_edge_level`` the sweep's and the automatic result's masks are the ESF's at that level.

    Reference: the same maps quantified directly (``quantify`` with ``edge_level``), and the
    default run: a lower level never gives a smaller mask.
    """
    from chemtomo.quantify import quantify
    from chemtomo.studies.benchmark import run_case

    spec, sim, series = case
    truth = Truth.of(spec, (7, 9))
    low, mid = (run_case(series, sim.factors, truth, "eds_sirt", tiny(mask_edge_level=q), reconstruct_series)
                for q in (0.35, 0.5))
    for which in ("best", "auto"):
        assert low[which]["mask"] == "esf"
        assert low[which]["mask_outside_particle"] >= mid[which]["mask_outside_particle"]
        assert low[which]["particle_missed_by_mask"] <= mid[which]["particle_missed_by_mask"]
    res = reconstruct_series(series, sim.factors, "eds_sirt", {"n_iter": low["auto"]["params"]["n"]})
    lines = list(res.lines)
    comp = quantify(np.asarray(res.maps), sim.factors.f(lines), sim.factors.atomic_weights(lines), lines,
                    list(res.elements), edge_level=0.35)
    got = score(truth, np.asarray(res.maps), comp.weight, list(res.elements))
    assert low["auto"]["mse_fraction_inside"] == pytest.approx(got["mse_fraction_inside"], rel=1e-9)
    # the level matters here: at the step's centre the same maps' mask is smaller
    centre = quantify(np.asarray(res.maps), sim.factors.f(lines), sim.factors.atomic_weights(lines), lines,
                      list(res.elements), edge_level=0.5)
    assert comp.mask.sum() > centre.mask.sum()


def test_esf_failure_falls_back_to_three_class_otsu(case, monkeypatch):
    """Where the ESF fit finds no edge, the sweep and the automatic result take ESF_FALLBACK's mask and say so.

    The ESF fit is made to fail (``esf_threshold`` raising its no-edge error). Reference: the
    automatic result's maps quantified directly with ``mask_method="multiotsu"``, and the
    sweep's maps through :func:`quantify_maps`, which must equal ``quantify(..., "multiotsu")``.
    """
    import chemtomo.quantify as quantify_module
    from chemtomo.quantify import quantify
    from chemtomo.studies.benchmark import quantify_maps, run_case

    def no_edge(*args, **kwargs):
        raise ValueError("no particle-background edge in the volume-threshold curve (test)")

    monkeypatch.setattr(quantify_module, "esf_threshold", no_edge)
    spec, sim, series = case
    truth = Truth.of(spec, (7, 9))
    out = run_case(series, sim.factors, truth, "eds_sirt", tiny(), reconstruct_series)
    assert out["auto"]["mask"] == "multiotsu (the ESF fit failed)"
    assert out["best"]["mask"] == "multiotsu (the ESF fit failed)"
    res = reconstruct_series(series, sim.factors, "eds_sirt", {"n_iter": out["auto"]["params"]["n"]},
                             mask_method="multiotsu")
    assert res.composition.threshold.method == "multiotsu"
    got = score(truth, np.asarray(res.maps), np.asarray(res.composition.weight), list(res.elements))
    assert out["auto"]["mse_fraction_inside"] == pytest.approx(got["mse_fraction_inside"], rel=1e-9)
    lines = list(res.lines)
    maps = np.asarray(res.maps)
    weight, mask = quantify_maps(maps, sim.factors, lines)
    want = quantify(maps, sim.factors.f(lines), sim.factors.atomic_weights(lines), lines, list(res.elements),
                    "multiotsu")
    assert mask == "multiotsu (the ESF fit failed)" and np.array_equal(weight, want.weight)


def test_config_refuses_a_bad_mask_edge_level():
    with pytest.raises(ValueError, match="edge_level"):
        tiny(mask_edge_level=1.0)
    with pytest.raises(ValueError, match="mask_edge_level 0.4"):
        tiny(mask_method="otsu", mask_edge_level=0.4)


def test_cli_mask_edge_level_refused_without_the_suite_or_out_of_range(tmp_path, capsys):
    """``--mask-edge-level`` sets the suite's mask: refused for a study without the suite and outside (0, 1)."""
    from chemtomo.cli import main

    assert main(["benchmark", "--study", "tilt_sets", "--mask-edge-level", "0.35", "--out", str(tmp_path)]) == 2
    assert "--mask-edge-level" in capsys.readouterr().err
    assert main(["benchmark", "--study", "suite", "--mask-edge-level", "1.5", "--out", str(tmp_path)]) == 2
    assert "edge_level" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before any work
