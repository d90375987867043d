"""``chemtomo reconstruct --absorption``: the absorption-corrected stack route, its result group and refusals."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from chemtomo.cli import main
from chemtomo.io import read_result
from chemtomo.io.hspy import to_signal
from chemtomo.simulate.absorption import simulate_series_absorbed
from chemtomo.simulate.specimens import make_specimen


def chemtomo(capsys, *args) -> tuple[int, str]:
    """Run the command line in this process: its exit code and stderr."""
    code = main(list(args))
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def absorbed(tmp_path_factory):
    """A tiny noiseless absorbed series of the oxide-supported specimen written as stacks, and the specimen."""
    folder = tmp_path_factory.mktemp("absorbed")
    sp = make_specimen("oxide_supported", n=12, field_nm=300.0)
    s = simulate_series_absorbed(sp, np.arange(-60.0, 61.0, 20.0), "super-x", noise=False, step_fraction=1.0).series
    md = {k: v for k, v in s.metadata.items() if isinstance(v, (int, float, str))}  # eds_dose etc.: the density
    to_signal(s.haadf, s.angles_deg, s.pixel_nm, "HAADF", md).save(folder / "haadf.hspy", overwrite=True)
    eds = []
    for ln, v in s.eds.items():
        to_signal(v, s.angles_deg, s.pixel_nm, ln, md).save(folder / f"{ln}.hspy", overwrite=True)
        eds += ["--eds", f"{ln}={folder / (ln + '.hspy')}"]
    return folder, eds, sp


@pytest.fixture(scope="module")
def corrected(absorbed):
    folder, eds, sp = absorbed
    out = folder / "out.h5"
    with pytest.MonkeyPatch.context() as mp:
        import io
        import sys

        err = io.StringIO()
        mp.setattr(sys, "stderr", err)
        code = main(["reconstruct", "--haadf", str(folder / "haadf.hspy"), *eds, "--absorption", "super-x",
                     "--method", "eds_sirt", "-n", "30", "--filter-sigma", "0", "--export", "none",
                     "--out", str(out), "--quiet"])
    assert code == 0, err.getvalue()
    return out, err.getvalue(), sp


def test_absorption_group_is_written_and_read(corrected):
    out, err, sp = corrected
    with h5py.File(out, "r") as f:
        g = f["absorption"]
        assert g.attrs["detectors"] and g.attrs["outer_iterations"] >= 1
        ds = g["transmission/O_Ka"]
        assert ds.shape == f["maps/O_Ka"].shape and ds.attrs["axes"] == "y,z,x" and ds.attrs["units"] == "1"
        assert g["density"].attrs["units"] == "g/cm^3"
        assert g["uncorrected/weight/O"].attrs["kind"] == "weight"
    r = read_result(out)
    a = r["absorption"]
    assert set(a["transmission"]) == {"Al_Ka", "O_Ka", "Pt_La"}
    t = a["transmission"]["O_Ka"]
    assert np.all((t >= 0) & (t <= 1 + 1e-6)) and t.min() < 0.99  # O Ka is absorbed somewhere
    assert a["detectors"]["name"] == "super-x" and a["density_source"] == "estimated from the maps"
    assert a["outer_iterations"] == len(a["changes"]) and a["max_outer"] == 5 and a["tol"] == 0.005
    assert set(a["uncorrected_weight"]) == {"Al", "O", "Pt"}
    assert a["density_g_cm3"].shape == r["mask"].shape
    assert "outer iteration" in err and "uncorrected -> corrected" in err


def test_corrected_oxygen_is_closer_to_the_truth(corrected):
    out, _, sp = corrected
    r = read_result(out)
    els = list(sp.elements)

    def support_mean(weights):
        return sp.region_means(np.stack([weights[el] for el in els]))["support"]["O"]

    truth = sp.region_means()["support"]["O"]
    before = support_mean(r["absorption"]["uncorrected_weight"])
    after = support_mean(r["weight"])
    # measured: truth 0.4707, uncorrected 0.4232, corrected 0.4717 (2 outer iterations)
    assert abs(after - truth) < abs(before - truth)
    assert truth - before > 0.03 and abs(after - truth) < 0.01


def test_result_without_absorption_reads_none(tmp_path, absorbed, capsys):
    folder, eds, _ = absorbed
    out = tmp_path / "plain.h5"
    code, err = chemtomo(capsys, "reconstruct", "--haadf", str(folder / "haadf.hspy"), *eds, "--method", "eds_sirt",
                         "-n", "30", "--filter-sigma", "0", "--export", "none", "--out", str(out), "--quiet")
    assert code == 0, err
    assert read_result(out)["absorption"] is None


def _refused(capsys, *args) -> str:
    code, err = chemtomo(capsys, "reconstruct", *args)
    assert code == 2, err
    assert "Traceback" not in err
    return err


def test_absorption_refused_on_raw_and_haadf_only_routes(tmp_path, absorbed, capsys):
    """The raw route takes --absorption (issue 14; tests/pipeline/test_raw_absorption.py), not what does not apply."""
    folder, eds, _ = absorbed
    err = _refused(capsys, str(tmp_path), "--lines", "O_Ka", "--absorption", "super-x", "--eds-elevation-deg", "18",
                   "--out", str(tmp_path / "o"))
    assert "--eds-elevation-deg" in err and "nominal" in err
    err = _refused(capsys, str(tmp_path), "--lines", "O_Ka", "--absorption", "super-x", "--replicas", "3",
                   "--out", str(tmp_path / "o"))
    assert "--replicas" in err and not (tmp_path / "o").exists()
    err = _refused(capsys, "--haadf", str(folder / "haadf.hspy"), "--density", "3", "--out", str(tmp_path / "h.h5"))
    assert "--density" in err
    err = _refused(capsys, "--haadf", str(folder / "haadf.hspy"), *eds, "--absorption-tol", "0.01",
                   "--out", str(tmp_path / "t.h5"))
    assert "--absorption-tol" in err and not Path(tmp_path / "t.h5").exists()
