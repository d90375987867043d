"""EDS detector facts from the files' metadata (``chemtomo.io.detector_meta``) and ``--absorption file``.

References: the values the vendor files hold in their own (original) metadata, read here by key;
the nominal ``single`` geometry of ``chemtomo.physics.DETECTOR_GEOMETRIES`` for the CLI test.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from chemtomo.cli import main
from chemtomo.io import read_result
from chemtomo.io.detector_meta import DetectorFacts, detector_facts
from chemtomo.io.hspy import read_tilt_series, to_signal

REPO = Path(__file__).resolve().parents[2]
VENDOR = REPO / ".." / "shared" / "data" / "vendor-samples"
VELOX = VENDOR / "velox" / "Test SI 16x16 215 kx.emd"
BCF_TEM = VENDOR / "bruker" / "test_TEM.bcf"
BCF_SEM = VENDOR / "bruker" / "bcf_v2_50x50px.bcf"
JEOL_PTS = VENDOR / "jeol" / "Sample" / "00_View000" / "View000_0000006.pts"


def _eds(path):
    if not VENDOR.is_dir():
        pytest.skip(f"vendor samples not found at {VENDOR.resolve()} (../shared/data absent)")
    pytest.importorskip("exspy")
    from chemtomo.io.vendor import load_signals

    sigs = load_signals(path, lazy=True)
    return [s for s in sigs if str(s.metadata.get_item("Signal.signal_type", "")).startswith("EDS")][-1]


def test_velox_four_detectors_from_original_metadata():
    """Velox: 4 Super-X G2 detectors at 18 deg, azimuths 45..315 deg, 0.7 sr total; HyperSpy's keys hold 35/0."""
    s = _eds(VELOX)
    om = s.original_metadata.Detectors
    ref = [om[k] for k in om.keys() if om[k].get_item("DetectorType") == "AnalyticalDetector"]
    facts = detector_facts(s)
    assert facts.n_detectors == len(ref) == 4
    np.testing.assert_allclose(facts.elevation_deg, [np.degrees(float(d.ElevationAngle)) for d in ref], atol=1e-6)
    np.testing.assert_allclose(facts.azimuth_deg, [45, 135, 225, 315], atol=1e-6)
    assert facts.solid_angle_sr == pytest.approx(float(ref[0].CollectionAngle)) == pytest.approx(0.7)
    # what HyperSpy's mapped keys say for this file: exSpy's defaults, not the instrument
    assert s.metadata.Acquisition_instrument.TEM.Detector.EDS.elevation_angle == 35.0
    g = facts.geometry(where="velox")
    assert g.n_detectors == 4 and g.total_solid_angle_sr == pytest.approx(0.7)
    np.testing.assert_allclose(g.elevation_deg, 18.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(g.azimuth_deg) % 360, [45, 315, 225, 135], atol=1e-6)  # 90 - az


def test_bruker_facts_and_missing_ones_named():
    """Bruker: elevation/azimuth from Analysis; SuperX with one azimuth and no count, no solid angle: clear errors."""
    s = _eds(BCF_TEM)
    facts = detector_facts(s)
    assert facts.elevation_deg == (float(s.original_metadata.Analysis.ElevationAngle),) == (18.0,)
    assert facts.azimuth_deg == (45.0,) and facts.detector_type == "SuperX" and facts.n_detectors is None
    assert facts.solid_angle_sr is None
    with pytest.raises(ValueError, match="--eds-azimuth-deg"):
        facts.geometry(solid_angle_sr=0.7)
    with pytest.raises(ValueError, match="CollectionAngle.*--solid-angle-sr"):
        facts.geometry(azimuth_deg=[45, 135, 225, 315])
    g = facts.geometry(azimuth_deg=[45, 135, 225, 315], solid_angle_sr=0.7)
    assert g.n_detectors == 4 and g.elevation_deg == (18.0,) * 4
    v2 = detector_facts(_eds(BCF_SEM))
    assert v2.n_detectors == 1 and v2.elevation_deg == (35.0,) and v2.azimuth_deg == (45.0,)
    assert v2.geometry(solid_angle_sr=0.03).azimuth_deg == (45.0,)


def test_jeol_facts():
    """JEOL .pts: ElevAng 22.3 and DirAng 90 (HyperSpy's keys, from the JEOL header); no solid angle."""
    facts = detector_facts(_eds(JEOL_PTS))
    assert facts.elevation_deg == pytest.approx((22.3,)) and facts.azimuth_deg == (90.0,)
    assert facts.geometry(solid_angle_sr=0.1).azimuth_deg == (0.0,)  # along the tilt axis in chemtomo's frame


def test_exspy_defaults_are_not_facts(tmp_path):
    """An EDS .hspy saved without detector keys gets exSpy's 35/0 on loading: treated as not stated."""
    exspy = pytest.importorskip("exspy")
    import hyperspy.api as hs

    s = exspy.signals.EDSTEMSpectrum(np.ones((2, 2, 64)))
    assert s.metadata.Acquisition_instrument.TEM.Detector.EDS.elevation_angle == 35.0
    s.save(tmp_path / "s.hspy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = hs.load(tmp_path / "s.hspy")
    facts = detector_facts(back)
    assert facts.elevation_deg is None and not facts.any
    with pytest.raises(ValueError, match="elevation_angle.*--eds-elevation-deg"):
        facts.geometry(where="s.hspy")
    assert DetectorFacts.from_dict(None) == DetectorFacts()


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    """A tiny noiseless series absorbed on the way to the nominal single detector, written as stacks.

    Their metadata state that detector's elevation (20 deg) and azimuth (0 in HyperSpy's convention), not its
    solid angle.
    """
    from chemtomo.simulate.absorption import simulate_series_absorbed
    from chemtomo.simulate.specimens import make_specimen

    folder = tmp_path_factory.mktemp("detfile")
    sp = make_specimen("oxide_supported", n=12, field_nm=300.0)
    s = simulate_series_absorbed(sp, np.arange(-60.0, 61.0, 20.0), "single", noise=False, step_fraction=1.0).series
    md = {k: v for k, v in s.metadata.items() if isinstance(v, (int, float, str))}
    eds = []
    for ln, v in s.eds.items():
        sig = to_signal(v, s.angles_deg, s.pixel_nm, ln, md)
        sig.metadata.set_item("Acquisition_instrument.TEM.Detector.EDS.elevation_angle", 20.0)
        sig.metadata.set_item("Acquisition_instrument.TEM.Detector.EDS.azimuth_angle", 0.0)
        sig.save(folder / f"{ln}.hspy", overwrite=True)
        eds += ["--eds", f"{ln}={folder / (ln + '.hspy')}"]
    return folder, eds


def test_stacks_carry_detector_facts(stacks):
    """read_tilt_series puts the stacks' detector keys in metadata['eds_detector']."""
    folder, eds = stacks
    series = read_tilt_series(dict(e.split("=", 1) for e in eds[1::2]))
    facts = DetectorFacts.from_dict(series.metadata["eds_detector"])
    assert facts.elevation_deg == (20.0,) and facts.azimuth_deg == (0.0,) and facts.solid_angle_sr is None


def test_absorption_file_equals_the_nominal_single_detector(stacks, capsys):
    """--absorption file with the files' 20 deg / 0 deg and --solid-angle-sr 0.13 is --absorption single exactly.

    Without the solid angle it is refused naming the flag, and nothing is written.
    """
    folder, eds = stacks
    common = [*eds, "--method", "eds_sirt", "-n", "20", "--filter-sigma", "0", "--export", "none", "--quiet"]
    out = folder / "none.h5"
    assert main(["reconstruct", *common, "--absorption", "file", "--out", str(out)]) == 2
    assert "--solid-angle-sr" in capsys.readouterr().err and not out.exists()
    assert main(["reconstruct", *common, "--absorption", "single", "--solid-angle-sr", "0.1",
                 "--out", str(out)]) == 2
    assert "--absorption file" in capsys.readouterr().err
    a, b = folder / "file.h5", folder / "single.h5"
    assert main(["reconstruct", *common, "--absorption", "file", "--solid-angle-sr", "0.13", "--out", str(a)]) == 0
    assert main(["reconstruct", *common, "--absorption", "single", "--out", str(b)]) == 0
    ra, rb = read_result(a), read_result(b)
    for line in ra["maps"]:
        np.testing.assert_array_equal(ra["maps"][line], rb["maps"][line])
