"""The regularised solvers and the automatic parameters in the volume pipeline and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
from test_distributed import LINES, core_shell_series

from chemtomo.physics import paper_table2
from chemtomo.pipeline import reconstruct_series
from chemtomo.pipeline.volume import auto_slice_block
from chemtomo.reconstruct import get_method


@pytest.fixture(scope="module")
def series():
    return core_shell_series(n_slices=8, n_pixels=32)


@pytest.fixture(scope="module")
def factors():
    return paper_table2(LINES)


@pytest.mark.parametrize("method", ["poisson_tv", "fused_tv"])
def test_regularised_volume_does_not_depend_on_the_chunks(series, factors, method):
    """The volume's constants go to every chunk: 1, 3 or 8 slices per chunk give the same maps.

    Equal up to the float32 rounding of the batched kernels.
    """
    whole = reconstruct_series(series, factors, method=method, n_iter=40, chunk_slices=8,
                               params={"mu": 0.2})
    parts = reconstruct_series(series, factors, method=method, n_iter=40, chunk_slices=3,
                               params={"mu": 0.2})
    np.testing.assert_allclose(parts.maps, whole.maps, rtol=1e-5, atol=1e-6 * float(np.max(whole.maps)))
    assert whole.parameters["constants"] == parts.parameters["constants"]
    assert whole.factor == ("z" if method == "fused_tv" else "f")


def test_regularised_methods_see_the_unfiltered_counts(series, factors):
    """A Poisson likelihood of filtered data would be wrong: the filter does not reach the solver."""
    assert all(get_method(m).raw_counts for m in ("ls_tv", "poisson_tv", "fused_tv"))
    a = reconstruct_series(series, factors, method="poisson_tv", n_iter=20, filter_sigma=0.8,
                           params={"mu": 0.2})
    b = reconstruct_series(series, factors, method="poisson_tv", n_iter=20, filter_sigma=None,
                           params={"mu": 0.2})
    np.testing.assert_array_equal(a.maps, b.maps)
    c = reconstruct_series(series, factors, method="eds_sirt", n_iter=20, filter_sigma=0.8)
    d = reconstruct_series(series, factors, method="eds_sirt", n_iter=20, filter_sigma=None)
    assert not np.array_equal(c.maps, d.maps)


def test_auto_chooses_on_the_slices_with_most_counts_and_records_it(series, factors):
    a, b = auto_slice_block(series, LINES, 4)
    totals = sum(series.eds[ln].sum(axis=(0, 2)) for ln in LINES)
    assert b - a == 4 and a <= int(np.argmax(totals)) < b
    res = reconstruct_series(series, factors, method="eds_sirt", n_iter=20, auto=True, auto_slices=4)
    auto = res.parameters["auto"]
    assert auto["slices"] == [a, b] and "discrepancy" in auto["rule"]
    assert res.parameters["n_iter"] == auto["params"]["n"]
    res = reconstruct_series(series, factors, method="poisson_tv", n_iter=40, auto=True, auto_slices=2)
    assert res.parameters["mu"] == pytest.approx(res.parameters["auto"]["params"]["mu"])
    with pytest.raises(ValueError, match="auto_slices"):
        reconstruct_series(series, factors, method="eds_sirt", auto=True, auto_slices=0)


def _chemtomo(*args):
    return subprocess.run([sys.executable, "-m", "chemtomo", *args], capture_output=True, text=True)


@pytest.mark.slow
def test_cli_fused_tv_with_automatic_weight(tmp_path):
    """``chemtomo reconstruct --method fused-tv --auto`` on simulated stacks.

    The same result layout, the chosen weight in the parameters and on stderr.
    """
    sim = tmp_path / "sim"
    assert _chemtomo("simulate", "--out", str(sim)).returncode == 0
    out = tmp_path / "r.h5"
    p = _chemtomo("reconstruct", "--haadf", str(sim / "haadf.hspy"), "--eds", f"Ag_La={sim / 'eds_Ag_La.hspy'}",
                  "--eds", f"Au_Ma={sim / 'eds_Au_Ma.hspy'}", "--method", "fused-tv", "--auto", "-n", "150",
                  "--out", str(out), "--quiet")
    assert p.returncode == 0, p.stderr
    assert "chosen from the data: {'mu'" in p.stderr
    with h5py.File(out) as f:
        params = json.loads(f.attrs["parameters"])
        assert params["method"] == "fused_tv" and params["n_iter"] == 150
        assert params["mu"] == pytest.approx(params["auto"]["params"]["mu"])
        for path in ("maps/Ag_La", "fractions/weight/Au", "mask", "response_ratios/Ag_La"):
            assert path in f
        w = f["fractions/weight/Au"][()]
        m = f["mask"][()].astype(bool)
    assert np.all((w >= 0) & (w <= 1)) and m.any()


def test_cli_rejects_bad_iterations(tmp_path):
    p = _chemtomo("reconstruct", "--eds", "Ag_La=x.hspy", "-n", "fused_tv=zero", "--out", str(tmp_path / "r.h5"))
    assert p.returncode == 2 and "--iterations takes N or METHOD=N" in p.stderr
