"""The command line, through a subprocess, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from chemtomo.io.hspy import to_signal


def chemtomo(*args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", "import sys; from chemtomo.cli import main; sys.exit(main())", *args],
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"chemtomo {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    chemtomo("simulate", "--out", str(out), "--slices", "2")
    return out


def _eds_args(folder: Path):
    return ["--eds", f"Ag_La={folder / 'eds_Ag_La.hspy'}", "--eds", f"Au_Ma={folder / 'eds_Au_Ma.hspy'}"]


def test_simulate_writes_series_and_truth(simulated):
    names = sorted(p.name for p in simulated.iterdir())
    assert names == ["eds_Ag_La.hspy", "eds_Au_Ma.hspy", "haadf.hspy", "truth.h5"]
    with h5py.File(simulated / "truth.h5") as f:
        assert f["fractions/weight/Au"].shape == (2, 97, 97)


@pytest.mark.parametrize("method", ["hebt_sirt", "eds_sirt"])
def test_reconstruct_writes_documented_layout(simulated, tmp_path, method):
    out = tmp_path / "res"
    proc = chemtomo("reconstruct", *_eds_args(simulated), "--haadf", str(simulated / "haadf.hspy"),
                    "--method", method, "-n", "100", *(["--alpha", "0.5"] if method == "hebt_sirt" else []),
                    "--out", str(out), "--quiet")
    path = out / "result.h5"
    assert path.is_file() and "wrote" in proc.stderr
    with h5py.File(path) as f:
        for key in ("maps/Ag_La", "maps/Au_Ma", "fractions/weight/Ag", "fractions/weight/Au",
                    "fractions/atomic/Ag", "fractions/atomic/Au", "mask"):
            assert f[key].shape == (2, 97, 97), key
        params = json.loads(f.attrs["parameters"])
        prov = json.loads(f.attrs["provenance"])
        assert params["method"] == method and params["n_iter"] == 100
        assert {Path(i["path"]).name for i in prov["inputs"]} >= {"eds_Ag_La.hspy", "eds_Au_Ma.hspy"}
        assert all(len(i["sha256"]) == 64 for i in prov["inputs"])
        assert "numpy" in prov["versions"]
        mask = f["mask"][()].astype(bool)
        w = f["fractions/weight/Ag"][()] + f["fractions/weight/Au"][()]
        np.testing.assert_allclose(w[mask], 1.0, rtol=1e-5)
        au = f["fractions/weight/Au"][()]
        truth = h5py.File(simulated / "truth.h5")["fractions/weight/Au"][()]
        inside = truth > 0
        assert np.sqrt(np.mean((au[inside] - truth[inside]) ** 2)) < 0.15
        if method == "hebt_sirt":
            g = f["response_ratios"]
            assert g.attrs["r2"] > 0.98
            for line in ("Ag_La", "Au_Ma"):
                assert g[line][()] == pytest.approx(g[line].attrs["theory"], rel=0.02)
    assert not list(out.glob(".*tmp*"))


def test_reconstruct_with_replicas_writes_uncertainty(simulated, tmp_path):
    out = tmp_path / "unc"
    proc = chemtomo("reconstruct", *_eds_args(simulated), "--method", "eds_sirt", "-n", "30", "--replicas", "3",
                    "--seed", "2", "--out", str(out), "--quiet")
    assert "+-" in proc.stderr
    from chemtomo.io import read_result

    res = read_result(out / "result.h5")
    unc = res["uncertainty"]
    assert unc is not None and unc["replicas"] == 3 and unc["seed"] == 2
    se = np.asarray(unc["bootstrap"]["weight"]["Au"]["se"])
    mask = np.asarray(res["mask"], bool)
    assert se.shape == mask.shape and np.all(se[mask] >= 0) and se[mask].max() > 0
    assert unc["interval_method"] == "percentile" and "bias" not in unc["bootstrap"]["weight"]["Au"]
    for flag in ("--jackknife", "--bias"):
        bad = chemtomo("reconstruct", *_eds_args(simulated), flag, "--out", str(tmp_path / "x"), check=False)
        assert bad.returncode == 2 and "--replicas" in bad.stderr and "Traceback" not in bad.stderr
        assert not (tmp_path / "x").exists()
    chemtomo("reconstruct", *_eds_args(simulated), "--method", "eds_sirt", "-n", "30", "--replicas", "3", "--bias",
             "--out", str(tmp_path / "b"), "--quiet")
    ub = read_result(tmp_path / "b" / "result.h5")["uncertainty"]
    assert ub["interval_method"] == "bias_widened" and "bias" in ub["bootstrap"]["weight"]["Au"]


def test_reconstruct_interval_option(simulated, tmp_path):
    """``--interval`` chooses the bootstrap's interval: written to /uncertainty and named in the printed table.

    Reference: the ``bias_scaled`` interval is the percentile interval of the same replicas widened by
    ``BIAS_SCALES["eds_sirt"]`` times the stored plug-in bias size per voxel (float32 storage: atol 1e-5).
    """
    from chemtomo.io import read_result
    from chemtomo.reconstruct.bootstrap import BIAS_SCALES

    common = [*_eds_args(simulated), "--method", "eds_sirt", "-n", "30", "--replicas", "3", "--seed", "2"]
    runs = {}
    for how, extra in (("percentile", []), ("bias_scaled", ["--bias"])):
        proc = chemtomo("reconstruct", *common, *extra, "--interval", how, "--out", str(tmp_path / how), "--quiet")
        assert f"90% {how} intervals" in proc.stderr
        runs[how] = read_result(tmp_path / how / "result.h5")
        assert runs[how]["uncertainty"]["interval_method"] == how
    mask = np.asarray(runs["percentile"]["mask"], bool)
    p, s = (runs[h]["uncertainty"]["bootstrap"]["weight"]["Au"] for h in ("percentile", "bias_scaled"))
    widen = BIAS_SCALES["eds_sirt"] * np.abs(np.asarray(s["bias"], np.float64))
    np.testing.assert_allclose(np.asarray(s["low"])[mask], (np.asarray(p["low"]) - widen)[mask], atol=1e-5)
    np.testing.assert_allclose(np.asarray(s["high"])[mask], (np.asarray(p["high"]) + widen)[mask], atol=1e-5)
    assert widen[mask].max() > 1e-3  # the widening is not vacuous


def _write_stack(path, data, angles):
    to_signal(data, angles, 1.5, "test").save(path, overwrite=True)


@pytest.fixture
def tiny(tmp_path):
    """A small valid series: 5 tilts, 2 slices, 16 pixels."""
    angles = np.array([-40.0, -20, 0, 20, 40])
    rng = np.random.default_rng(0)
    data = {name: rng.poisson(20, (5, 2, 16)).astype(np.float32) for name in ("haadf", "Ag_La", "Au_Ma")}
    for name, d in data.items():
        _write_stack(tmp_path / f"{name}.hspy", d, angles)
    return tmp_path, data, angles


def _bad_run(tmp_path, *extra, eds=("Ag_La", "Au_Ma")):
    args = ["reconstruct", "--haadf", str(tmp_path / "haadf.hspy")]
    for e in eds:
        args += ["--eds", f"{e}={tmp_path / (e + '.hspy')}"]
    proc = chemtomo(*args, "--factors", "paper", "--out", str(tmp_path / "out"), "--quiet", *extra, check=False)
    assert proc.returncode == 2, proc.stderr
    assert not (tmp_path / "out" / "result.h5").exists()
    assert "Traceback" not in proc.stderr
    return proc.stderr


def test_error_angles_do_not_match_stack(tiny):
    err = _bad_run(tiny[0], "--angles", "-10", "0", "10")
    assert "5 images but 3 tilt angles" in err


def test_error_nan_counts(tiny):
    folder, data, angles = tiny
    d = data["Ag_La"].copy()
    d[1, 0, 3] = np.nan
    _write_stack(folder / "Ag_La.hspy", d, angles)
    assert "NaN" in _bad_run(folder)


def test_error_negative_counts(tiny):
    folder, data, angles = tiny
    d = data["Au_Ma"].copy()
    d[2, 1, 5] = -4
    _write_stack(folder / "Au_Ma.hspy", d, angles)
    assert "negative counts" in _bad_run(folder)


def test_error_element_missing_from_physics_table(tiny):
    folder, data, angles = tiny
    _write_stack(folder / "Cu_Ka.hspy", data["Ag_La"], angles)
    assert "Table 2" in _bad_run(folder, eds=("Ag_La", "Cu_Ka"))


def test_error_unknown_element_in_physics(tiny):
    folder, data, angles = tiny
    _write_stack(folder / "Xx_Ka.hspy", data["Ag_La"], angles)
    proc = chemtomo("reconstruct", "--eds", f"Xx_Ka={folder / 'Xx_Ka.hspy'}", "--method", "eds_sirt",
                    "--beam-kev", "200", "--out", str(folder / "out"), "--quiet", check=False)
    assert proc.returncode == 2 and "Xx" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("alpha", ["1.0", "-0.2"])
def test_error_alpha_outside_range(tiny, alpha):
    assert "[0, 1)" in _bad_run(tiny[0], "--alpha", alpha)


@pytest.mark.parametrize("n", ["0", "-3"])
def test_error_non_positive_iterations(tiny, n):
    assert "positive integer" in _bad_run(tiny[0], "-n", n)


def test_error_missing_file(tiny):
    err = _bad_run(tiny[0], eds=("Ag_La", "Zz_Ka"))
    assert "no such file" in err


@pytest.mark.slow
def test_demo_quick_writes_required_metrics(tmp_path):
    """`chemtomo demo --quick` writes metrics.json with the keys the README documents."""
    out = tmp_path / "demo"
    chemtomo("demo", "--quick", "--out", str(out))
    m = json.loads((out / "metrics.json").read_text())
    rr = m["response_ratios"]
    for line in ("Ag_La", "Au_Ma"):
        assert set(rr[line]) >= {"fit", "theory"}
        assert rr[line]["fit"] == pytest.approx(rr[line]["theory"], rel=0.02)
    assert rr["r2"] >= 0.98
    for method in ("eds_sirt", "hebt_sirt"):
        best = m["methods"][method]["best"]
        assert set(best) >= {"n", "core_Au", "shell_Au", "mse_fraction_inside", "ssim", "mse_scaled"}
        assert set(best["ssim"]) == {"Ag", "Au"} and set(best["mse_scaled"]) == {"Ag", "Au"}
        assert abs(best["core_Au"] - 0.8) <= 0.02 and abs(best["shell_Au"] - 0.2) <= 0.02
    assert "alpha" in m["methods"]["hebt_sirt"]["best"]
    assert set(m["dose_sweep"]) == {"1", "0.1", "0.01"}
    for d in m["dose_sweep"].values():
        assert {"eds_sirt", "hebt_sirt"} <= set(d["methods"])
    assert all(m["acceptance"].values()), m["acceptance"]
    report = (out / "report.md").read_text()
    assert "Findings beside the paper" in report and "Dose sweep" in report
    assert len(list(out.glob("fig*.png"))) >= 12
