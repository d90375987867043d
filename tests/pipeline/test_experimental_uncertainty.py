"""The raw route's bootstrap (issue 15): /uncertainty in result.h5, values without replicas unchanged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_experimental_synthetic import LINES, make_series  # noqa: E402

from chemtomo.io import read_result  # noqa: E402
from chemtomo.pipeline.experimental import run_experimental  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _quiet_import():
    from chemtomo.io.microscope import _hs

    _hs()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny raw series (16 px, 5 tilts, padded) run without and with 3 replicas."""
    folder = make_series(tmp_path_factory.mktemp("raw"), n=16, angles_deg=np.arange(-40, 41, 20.0), seed=3).folder
    out = tmp_path_factory.mktemp("out")
    kw = dict(n_iter=5, bin_factor=1, progress=False, figures=False, pad=2)
    plain = run_experimental(folder, LINES, out / "plain", **kw)
    boot = run_experimental(folder, LINES, out / "boot", replicas=3, seed=1, **kw)
    return plain, boot, out


def test_values_without_replicas_unchanged(runs):
    """The reconstructions are the same bits with and without the bootstrap; without it, no /uncertainty."""
    plain, boot, out = runs
    assert plain.uncertainty == {} and set(boot.uncertainty) == set(boot.results)
    for m, res in plain.results.items():
        np.testing.assert_array_equal(res.maps, boot.results[m].maps)
        np.testing.assert_array_equal(res.composition.weight, boot.results[m].composition.weight)
    assert read_result(out / "plain" / "result.h5")["uncertainty"] is None


def test_uncertainty_written_and_consistent(runs):
    """The primary method's /uncertainty holds the replicas on the cropped grid; its particle means are the result's."""
    _, boot, out = runs
    unc = read_result(out / "boot" / "result.h5")["uncertainty"]
    assert unc is not None and unc["replicas"] == 3 and unc["seed"] == 1
    for m, u in boot.uncertainty.items():
        res = boot.results[m]
        assert boot.pre.pad_px == 2 and u.bootstrap.weight.se.shape == res.composition.weight.shape
        mask = res.composition.mask
        for r in u.table("weight"):
            if r["region"] == "particle":
                w = res.composition.weight[res.elements.index(r["element"])]
                assert r["value"] == pytest.approx(float(w[mask].mean()), rel=1e-6)
                assert 0 < r["se"] < 0.2  # counting noise of a 16-pixel, 60-count series: present, bounded


def chemtomo(*args, check=True):
    return subprocess.run([sys.executable, "-m", "chemtomo", *map(str, args)], capture_output=True, text=True,
                          check=check)


def test_cli_raw_replicas(runs):
    """`reconstruct FOLDER --replicas 2 --seed 5`: accepted, /uncertainty written, value +- se printed."""
    plain, _, out = runs
    folder = Path(plain.inputs[0]).parent
    proc = chemtomo("reconstruct", folder, "--lines", *LINES, "--bin", "1", "-n", "5", "--method", "eds_sirt",
                    "--pad", "2", "--export", "none", "--no-figures", "--out", out / "cli", "--quiet",
                    "--replicas", "2", "--seed", "5", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "value +- bootstrap se (2 replicas)" in proc.stderr
    unc = read_result(out / "cli" / "result.h5")["uncertainty"]
    assert unc["replicas"] == 2 and unc["seed"] == 5
