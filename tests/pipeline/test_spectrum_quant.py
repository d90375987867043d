"""``chemtomo quantify``: one spectrum or spectrum image, thin-film fractions with chemtomo's factors.

References: a synthetic spectrum image whose line counts are made from a known composition
and the factors' own ingredients (f_A = sigma_ion omega p eps / M computed here, not by the
code under test); the real vendor files of ../shared/data/vendor-samples (RosettaSciIO's test
data, GPL-3.0, see its README/COPYING), where the per-line totals and fractions are checked
against exSpy's own line intensities and the thin-film formula written out here.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from chemtomo.cli import main
from chemtomo.physics import compute_factors
from chemtomo.pipeline.spectrum import composition_signals, quantify_spectrum, write_maps, write_table
from chemtomo.preprocess.linemaps import synthesize_spectrum_image

pytest.importorskip("exspy")

REPO = Path(__file__).resolve().parents[2]
VENDOR = REPO / ".." / "shared" / "data" / "vendor-samples"
BCF_TEM = VENDOR / "bruker" / "test_TEM.bcf"
VELOX = VENDOR / "velox" / "Test SI 16x16 215 kx.emd"
VELOX_REDUCED = VENDOR / "velox" / "Test SI 16x16 ReducedData 215 kx.emd"
JEOL_PTS = VENDOR / "jeol" / "Sample" / "00_View000" / "View000_0000006.pts"
BCF_NOPE = VENDOR / "bruker" / "Nope.bcf"

LINES = ["Fe_Ka", "Cu_Ka", "Pt_La"]
BEAM_KEV = 200.0
ENERGY_AXIS = (0.0, 0.01, 2048)  # keV offset, keV per channel, channels


def _vendor():
    if not VENDOR.is_dir():
        pytest.skip(f"vendor samples not found at {VENDOR.resolve()} (../shared/data absent)")


def _f_independent(lines, beam_kev, eff=0.96):
    """f_A = sigma_ion omega p eps / M from the factors' ingredients, multiplied out here."""
    fac = compute_factors(lines, beam_kev=beam_kev, detector=eff)
    return np.array([fac[x].sigma_ionization_barn * fac[x].fluorescence_yield * fac[x].relative_intensity
                     * fac[x].detector_efficiency / fac[x].atomic_weight for x in lines]), fac


def _synthetic_signal(weight):
    """An EDS_TEM spectrum image (expected counts) whose line counts are I_A = N C_A f_A."""
    import exspy

    f, _ = _f_independent(LINES, BEAM_KEV)
    n = 4e5  # counts per unit f and weight fraction: ~1e5 counts per line and pixel
    maps = {ln: n * weight[i] * f[i] for i, ln in enumerate(LINES)}
    data = synthesize_spectrum_image(maps, ENERGY_AXIS)
    s = exspy.signals.EDSTEMSpectrum(data)
    ax = s.axes_manager.signal_axes[0]
    ax.offset, ax.scale, ax.units, ax.name = ENERGY_AXIS[0], ENERGY_AXIS[1], "keV", "Energy"
    for a in s.axes_manager.navigation_axes:
        a.scale, a.units = 2.0, "nm"
    s.metadata.set_item("Acquisition_instrument.TEM.beam_energy", BEAM_KEV)
    s.metadata.set_item("Sample.elements", ["Cu", "Fe", "Pt"])
    return s


def _weights(shape=(3, 4)):
    rng = np.random.default_rng(3)
    w = rng.uniform(0.1, 1.0, size=(3, *shape))
    return w / w.sum(axis=0)


@pytest.mark.parametrize("intensity", ["windows", "fit"])
def test_synthetic_spectrum_image_recovers_known_composition(intensity):
    """Per pixel and summed: the known weight fractions within 2e-3 (background and window bias)."""
    w_true = _weights()
    comp = quantify_spectrum(_synthetic_signal(w_true), LINES, intensity=intensity)
    assert comp.is_image and comp.weight.shape == w_true.shape
    np.testing.assert_allclose(comp.weight, w_true, atol=2e-3)
    _, fac = _f_independent(LINES, BEAM_KEV)
    m = np.array([fac[x].atomic_weight for x in LINES])
    a_true = (w_true / m[:, None, None]) / (w_true / m[:, None, None]).sum(axis=0)
    np.testing.assert_allclose(comp.atomic, a_true, atol=2e-3)
    # the whole scan: the counts-weighted composition of the pixels
    f, _ = _f_independent(LINES, BEAM_KEV)
    tot = (w_true * f[:, None, None]).sum(axis=(1, 2)) / f
    np.testing.assert_allclose(comp.total_weight, tot / tot.sum(), atol=2e-3)
    assert comp.source["beam_kev"] == BEAM_KEV and "metadata" in comp.source["beam_kev_from"]


def test_single_spectrum_msa_file(tmp_path):
    """A single spectrum written as .msa by HyperSpy reads back and quantifies to its composition."""
    w_true = np.array([0.2, 0.3, 0.5])
    s = _synthetic_signal(w_true[:, None, None] * np.ones((3, 1, 1))).inav[0, 0]
    path = tmp_path / "one.msa"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # HyperSpy's msa writer notes metadata it cannot keep
        s.save(path)
    comp = quantify_spectrum(path, LINES)
    assert not comp.is_image and comp.weight.shape == (3,)
    np.testing.assert_allclose(comp.weight, w_true, atol=2e-3)
    np.testing.assert_allclose(comp.total_weight, comp.weight)
    out = tmp_path / "t.csv"
    assert main(["quantify", str(path), "--lines", *LINES, "--out", str(out)]) == 0
    rows = out.read_text().splitlines()
    assert rows[0].startswith("line,element,intensity_counts") and len(rows) == 4
    assert main(["quantify", str(path), "--lines", *LINES, "--maps", str(tmp_path / "m")]) == 2


def test_bruker_spectrum_image(tmp_path, capsys):
    """test_TEM.bcf: lines and beam energy (200 kV) from the file; its maps reopen in HyperSpy in nm.

    Totals equal the sum of the pixels (windows are linear); fractions equal the thin-film formula with
    independently multiplied factors.
    """
    _vendor()
    import hyperspy.api as hs

    comp = quantify_spectrum(BCF_TEM)
    assert comp.lines == ["Cu_Ka", "O_Ka", "Pd_La", "Ti_Ka"] and comp.source["beam_kev"] == 200.0
    assert comp.intensities.shape == (4, 64, 64)
    np.testing.assert_allclose(comp.total_intensities, comp.intensities.sum(axis=(1, 2)), rtol=1e-4, atol=1e-2)
    f, _ = _f_independent(comp.lines, 200.0)
    x = np.clip(comp.total_intensities, 0, None) / f
    np.testing.assert_allclose(comp.total_weight, x / x.sum(), rtol=1e-12)
    assert abs(comp.total_weight.sum() - 1) < 1e-12
    # exSpy's own windows on the summed spectrum give the same Ti Ka counts to 1 count
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = [x for x in hs.load(BCF_TEM) if x.axes_manager.signal_dimension == 1][0].sum()
    from chemtomo.preprocess.linemaps import background_windows

    win = background_windows(s, ["Ti_Ka"], avoid=["Cu", "O", "Pd", "Ti"])
    ti = s.get_lines_intensity(xray_lines=["Ti_Ka"], background_windows=win, integration_windows=2.0)[0]
    assert abs(float(np.asarray(ti.data).ravel()[0]) - comp.total_intensities[3]) < 1.0
    paths = write_maps(comp, tmp_path / "maps")
    w = hs.load(paths[1])
    assert w.data.shape == (4, 64, 64) and w.axes_manager.signal_axes[0].units == "nm"
    assert w.axes_manager.signal_axes[0].scale == pytest.approx(comp.pixel_nm)
    np.testing.assert_allclose(w.data, comp.weight.astype(np.float32))
    assert main(["quantify", str(BCF_TEM), "--out", str(tmp_path / "t.json"), "--bin", "4"]) == 0
    doc = json.loads((tmp_path / "t.json").read_text())
    assert [r["line"] for r in doc["rows"]] == comp.lines and doc["spectrum_image"]["shape"] == [16, 16]
    assert doc["spectrum_image"]["pixel_nm"] == pytest.approx(4 * comp.pixel_nm)
    assert "Ti_Ka" in capsys.readouterr().out


def test_velox_spectrum_image_and_reduced_file(tmp_path, capsys):
    """Velox: the spectrum image is taken among the file's five EDS signals, 300 kV from the file.

    The reduced file (summed spectra only) is refused until --signal chooses one.
    """
    _vendor()
    comp = quantify_spectrum(VELOX, ["Ca_Ka", "Cu_Ka"])
    assert comp.intensities.shape == (2, 16, 16) and comp.source["beam_kev"] == 300.0
    # the Velox file states its detectors' solid angle (0.7 sr): the JSON table carries partial cross-sections
    assert comp.solid_angle_sr == pytest.approx(0.7) and comp.source["detector"]["n_detectors"] == 4
    write_table(comp, tmp_path / "v.json")
    fac = json.loads((tmp_path / "v.json").read_text())["factors"]["Ca_Ka"]
    assert fac["partial_cross_section_barn"] == pytest.approx(
        fac["f_barn_mol_per_g"] * 0.7 / (4 * np.pi) * fac["atomic_weight"], rel=1e-12)
    assert main(["quantify", str(VELOX_REDUCED), "--lines", "Ca_Ka", "Cu_Ka"]) == 2
    assert "--signal" in capsys.readouterr().err
    comp = quantify_spectrum(VELOX_REDUCED, ["Ca_Ka", "Cu_Ka"], signal_index=0)
    assert not comp.is_image and abs(comp.weight.sum() - 1) < 1e-12


@pytest.mark.slow
def test_jeol_pts_spectrum_image():
    """JEOL .pts (512 x 512 px): no lines in its metadata, so --lines is asked for; with them, fractions per pixel."""
    _vendor()
    with pytest.raises(ValueError, match="--lines"):
        quantify_spectrum(JEOL_PTS)
    comp = quantify_spectrum(JEOL_PTS, ["Cu_Ka", "C_Ka"], bin_factor=8)
    assert comp.intensities.shape == (2, 64, 64) and comp.source["beam_kev"] == pytest.approx(200.0)


def test_clear_refusals(tmp_path, capsys):
    """Not a Bruker file, a missing beam energy, a bad table suffix: one line naming the fix, exit 2."""
    _vendor()
    assert main(["quantify", str(BCF_NOPE), "--lines", "Cu_Ka"]) == 2
    assert "Nope.bcf" in capsys.readouterr().err
    s = _synthetic_signal(_weights((2, 2)))
    s.metadata.Acquisition_instrument.TEM.beam_energy = None
    del s.metadata.Acquisition_instrument.TEM.beam_energy
    with pytest.raises(ValueError, match="--beam-kev"):
        quantify_spectrum(s, LINES)
    comp = quantify_spectrum(s, LINES, beam_kev=BEAM_KEV)
    with pytest.raises(ValueError, match="--factors physics"):
        quantify_spectrum(s, LINES, "paper", beam_kev=BEAM_KEV, efficiency="windowless-sdd")
    with pytest.raises(ValueError, match=".csv or .json"):
        write_table(comp, tmp_path / "t.txt")
    assert set(composition_signals(comp)) == {"intensity", "weight", "atomic"}
