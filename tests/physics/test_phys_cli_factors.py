"""`chemtomo factors`: the table, the JSON object, and one-line errors (exit 2)."""

import json

import pytest

import chemtomo.cli as cli

REQUIRED = ("atomic_weight", "sigma_elastic_barn", "sigma_ionization_barn", "fluorescence_yield",
            "relative_intensity", "detector_efficiency", "f_barn_mol_per_g", "z_barn_mol_per_g",
            "partial_cross_section_barn", "sources")


@pytest.fixture
def main(monkeypatch):
    """cli.main with only this command registered (the test does not depend on other commands)."""
    monkeypatch.setattr(cli, "COMMANDS", ("factors",))
    return cli.main


def test_factors_is_registered():
    assert "factors" in cli.COMMANDS


def test_json(main, capsys):
    assert main(["factors", "Co_Ka", "Zn_Ka", "--beam-kev", "80", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["Co_Ka", "Zn_Ka"]
    for line in data.values():
        for key in REQUIRED:
            assert key in line, key
        for key in ("sigma_elastic", "sigma_ionization", "fluorescence_yield", "relative_intensity",
                    "detector_efficiency", "atomic_weight"):
            assert line["sources"][key]
    assert data["Co_Ka"]["f_barn_mol_per_g"] == pytest.approx(2.25, rel=0.01)
    assert data["Zn_Ka"]["z_barn_mol_per_g"] == pytest.approx(9.96e4, rel=0.01)
    assert data["Co_Ka"]["detector_efficiency"] == 0.96


def test_table_and_options(main, capsys):
    assert main(["factors", "Ag_La", "Au_Ma", "--beam-kev", "100", "--detector", "windowless-sdd",
                 "--haadf-mrad", "94", "611", "--solid-angle-sr", "0.7"]) == 0
    out = capsys.readouterr().out
    assert "sigma_ela (barn)" in out and "Ag_La" in out and "sources:" in out
    assert "94-611 mrad" in out and "windowless-sdd" in out


def test_flat_efficiency_option(main, capsys):
    assert main(["factors", "Co_Ka", "--beam-kev", "80", "--efficiency", "0.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["Co_Ka"]["detector_efficiency"] == 0.5


def test_paper_preset(main, capsys):
    assert main(["factors", "Ag_La", "Au_Ma", "--preset", "paper-table2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["Au_Ma"]["relative_intensity"] == 0.999


@pytest.mark.parametrize(
    "argv, match",
    [
        (["Xx_Ka", "--beam-kev", "80"], "unknown element 'Xx'"),
        (["Co_Kq", "--beam-kev", "80"], "unknown line 'Kq'"),
        (["Co_Ka", "--beam-kev", "5"], "below the Co K ionization energy"),
        (["Na_Kb", "--beam-kev", "80"], "Na has no Kb line"),
        (["Co_Ka"], "--beam-kev is required"),
        (["Co_Ka", "--beam-kev", "80", "--efficiency", "1.5"], r"\(0, 1\]"),
        (["Co_Ka", "--beam-kev", "80", "--dose-ratio", "-1"], "--dose-ratio"),
        (["Co_Ka", "--preset", "paper-table2", "--beam-kev", "100"], "80 keV in Table 2"),
    ],
)
def test_errors_are_one_line_exit_2(main, capsys, argv, match):
    assert main(["factors", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("chemtomo factors: error:") and "\n" not in err
    assert pytest.importorskip("re").search(match, err), err


def test_300_kev_default_does_not_extrapolate(main, capsys):
    assert main(["factors", "Ag_La", "Au_Ma", "--beam-kev", "300", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for line in data.values():
        assert "extrapolated" not in line["sources"]["sigma_elastic"]
        assert line["sources"]["sigma_elastic"].startswith("screened_rutherford_mott")
