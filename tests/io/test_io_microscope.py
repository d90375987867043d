"""Raw tilt-series loading: file discovery, tilt angles, spectrum images, bad input.

Small spectrum-image files are written by the tests (HyperSpy .hspy); the real
Bruker .bcf series is read from ../shared/data when that folder exists.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from chemtomo.io.microscope import (
    angle_from_filename,
    find_tilt_files,
    open_tilt_series,
    read_tilt,
    resolve_angles,
)

REPO = Path(__file__).resolve().parents[2]
NCEM = REPO / ".." / "shared" / "data" / "ncem-idp-eds-tilt-series"
ENERGY = (0.0, 0.02, 500)  # keV offset, keV/channel, channels: 0-10 keV


def write_si(path: Path, shape=(8, 10), *, tilt_alpha=None, pixel_nm=2.0, haadf=True, beam_kev=80.0, seed=0):
    """A small EDS spectrum image (.hspy) with Fe Ka and Cu Ka lines, and its HAADF companion."""
    from chemtomo.io.microscope import _hs

    hs = _hs()  # imports HyperSpy and exSpy without their deprecation chatter
    import exspy

    from chemtomo.preprocess.linemaps import synthesize_spectrum_image

    rng = np.random.default_rng(seed)
    maps = {"Fe_Ka": np.full(shape, 20.0), "Cu_Ka": np.full(shape, 10.0)}
    s = exspy.signals.EDSTEMSpectrum(synthesize_spectrum_image(maps, ENERGY, rng=rng))
    for ax in s.axes_manager.navigation_axes:
        ax.units, ax.scale = "nm", pixel_nm
    e = s.axes_manager.signal_axes[0]
    e.units, e.offset, e.scale = "keV", ENERGY[0], ENERGY[1]
    s.metadata.set_item("Acquisition_instrument.TEM.beam_energy", beam_kev)
    if tilt_alpha is not None:
        s.metadata.set_item("Acquisition_instrument.TEM.Stage.tilt_alpha", float(tilt_alpha))
    s.save(path, overwrite=True)
    if haadf:
        h = hs.signals.Signal2D(rng.poisson(1000, shape).astype(np.float32))
        h.metadata.General.title = "HAADF"
        h.save(path.with_name(path.stem + "_haadf.hspy"), overwrite=True)
    return path


@pytest.fixture
def folder(tmp_path):
    for a in (20, -20, 0, 10, -10):
        write_si(tmp_path / f"tilt_{a:+d}.hspy", seed=a + 50)
    return tmp_path


# ----------------------------------------------------------------------------- angles

@pytest.mark.parametrize("name, angle", [
    ("-10.bcf", -10.0), ("+35.5.emd", 35.5), ("0.bcf", 0.0), ("tilt_+35.hspy", 35.0), ("TS tilt=-12.5.emd", -12.5),
    ("map_-40deg.bcf", -40.0), ("series_alpha-5.emd", -5.0), ("a_12°.hspy", 12.0), ("tilt_-10_haadf.hspy", -10.0),
    ("scan_003.bcf", None), ("map.bcf", None), ("EDS 12.bcf", None),
])
def test_angle_from_filename(name, angle):
    assert angle_from_filename(name) == angle


def test_resolve_angles_prefers_user_then_metadata_then_names():
    paths = [Path("a_-10deg.bcf"), Path("a_0deg.bcf"), Path("a_10deg.bcf")]
    a, src = resolve_angles(paths, [None, None, None], [-9.0, 0.5, 11.0])
    assert src == "user" and a.tolist() == [-9.0, 0.5, 11.0]
    a, src = resolve_angles(paths, [-10.0, 0.0, 10.0])
    assert src == "metadata"
    a, src = resolve_angles(paths, [0.0, 0.0, 0.0])  # Bruker writes 0 for every tilt: ignored
    assert src == "filename" and a.tolist() == [-10.0, 0.0, 10.0]


def test_resolve_angles_errors():
    paths = [Path("m1.bcf"), Path("m2.bcf"), Path("m3.bcf")]
    with pytest.raises(ValueError, match="no tilt angles found.*--angles"):
        resolve_angles(paths, [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="2 tilt angles given for 3 files"):
        resolve_angles(paths, [None] * 3, [1.0, 2.0])
    with pytest.raises(ValueError, match="duplicated.*m1.bcf.*m3.bcf"):
        resolve_angles(paths, [None] * 3, [5.0, 0.0, 5.0])
    named = [Path("-10.bcf"), Path("0.bcf"), Path("10.bcf")]
    with pytest.raises(ValueError, match="do not match.*-10.bcf: metadata -12, name -10"):
        resolve_angles(named, [-12.0, 0.0, 10.0])
    a, src = resolve_angles(named, [-12.0, 0.0, 10.0], angle_source="filename")
    assert src == "filename" and a[0] == -10.0
    with pytest.raises(ValueError, match="angle_source must be one of"):
        resolve_angles(named, [None] * 3, angle_source="guess")


# ----------------------------------------------------------------------------- files

def test_find_tilt_files_natural_order_and_errors(folder, tmp_path_factory):
    files = find_tilt_files(folder)
    assert [f.stem for f in files] == ["tilt_-20", "tilt_-10", "tilt_+0", "tilt_+10", "tilt_+20"]
    empty = tmp_path_factory.mktemp("empty")
    (empty / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="holds no tilt files"):
        find_tilt_files(empty)
    with pytest.raises(ValueError, match="unsupported file type"):
        find_tilt_files([empty / "notes.txt"])
    with pytest.raises(FileNotFoundError):
        find_tilt_files([folder / "nope.bcf"])


def test_open_tilt_series_sorted_by_angle_with_metadata(folder):
    raw = open_tilt_series(folder)
    assert raw.angles_deg.tolist() == [-20, -10, 0, 10, 20]
    assert raw.angle_source == "filename"
    assert raw.pixel_nm == pytest.approx(2.0) and raw.beam_kev == 80.0
    assert raw.image_shape == (8, 10) and raw.has_haadf
    assert raw.energy_axis == pytest.approx((0.0, 0.02, 500))
    t = raw.read(0)
    assert t.spectrum_image.data.shape == (8, 10, 500)
    assert t.haadf.data.shape == (8, 10) and t.angle_deg == -20
    assert len(raw.inputs()) == 10  # tilt files and HAADF companions


def test_user_angles_pair_with_files_in_order(folder):
    files = find_tilt_files(folder)
    raw = open_tilt_series(files[::-1], angles_deg=[2, 1, 0, -1, -2])
    assert raw.angles_deg.tolist() == [-2, -1, 0, 1, 2]
    assert raw.paths[0].stem == "tilt_-20"  # files given reversed with angles reversed: same pairing


def test_metadata_angles_used_when_distinct(tmp_path):
    for i, a in enumerate((-30.0, 0.0, 30.0)):
        write_si(tmp_path / f"scan_{i}.hspy", tilt_alpha=a, haadf=False)
    raw = open_tilt_series(tmp_path)
    assert raw.angle_source == "metadata" and raw.angles_deg.tolist() == [-30, 0, 30]
    assert not raw.has_haadf


def test_error_not_a_spectrum_image(folder):
    from chemtomo.io.microscope import _hs

    _hs().signals.Signal2D(np.ones((8, 10))).save(folder / "tilt_+30.hspy")
    with pytest.raises(ValueError, match=r"tilt_\+30.hspy holds no EDS spectrum image .*Signal2D"):
        open_tilt_series(folder)


def test_error_mismatched_image_sizes(folder):
    write_si(folder / "tilt_+30.hspy", shape=(8, 12))
    with pytest.raises(ValueError, match="image sizes differ between tilts.*8x12"):
        open_tilt_series(folder)


def test_error_duplicated_angle(folder):
    write_si(folder / "tilt_10deg.hspy")
    with pytest.raises(ValueError, match="tilt angle 10 degrees .* is duplicated"):
        open_tilt_series(folder)


def test_error_truncated_hspy(folder):
    p = folder / "tilt_+20.hspy"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match=r"tilt_\+20.hspy: cannot be read .*truncated"):
        open_tilt_series(folder)


def test_error_not_a_bcf(tmp_path):
    (tmp_path / "0.bcf").write_bytes(b"hello, not a Bruker file" * 10)
    with pytest.raises(ValueError, match="not a readable Bruker .bcf"):
        open_tilt_series(tmp_path)


def test_error_haadf_missing_for_some_tilts(folder):
    (folder / "tilt_+10_haadf.hspy").unlink()
    with pytest.raises(ValueError, match="HAADF image missing for .*tilt_\\+10"):
        open_tilt_series(folder)


# ----------------------------------------------------------------------------- the real .bcf series

def _need_ncem():
    if not NCEM.is_dir():
        pytest.skip(f"shared dataset not found at {NCEM.resolve()} (../shared/data absent)")


@pytest.mark.shared_data
def test_real_bcf_series_scans():
    _need_ncem()
    raw = open_tilt_series(NCEM)
    assert len(raw) == 16
    assert raw.angles_deg.tolist() == list(range(-40, 36, 5))
    assert raw.angle_source == "filename"  # tilt_alpha is 0 in every file
    assert any("tilt_alpha is 0" in n for n in raw.notes)
    assert raw.image_shape == (256, 256)
    assert raw.pixel_nm == pytest.approx(13.08, abs=0.01)
    assert raw.beam_kev == 200.0
    assert raw.energy_axis[2] == 2048
    t = raw.read(8)
    assert t.angle_deg == 0 and t.spectrum_image.data.shape == (256, 256, 2048)
    assert t.haadf.data.shape == (256, 256)


@pytest.mark.shared_data
def test_truncated_bcf_is_refused_not_crashed(tmp_path):
    """The Bruker reader memory-maps the file: a truncated .bcf would kill the process (SIGBUS)."""
    _need_ncem()
    for name in ("0.bcf", "5.bcf"):
        shutil.copy(NCEM / name, tmp_path / name)
    data = (tmp_path / "5.bcf").read_bytes()
    (tmp_path / "5.bcf").write_bytes(data[: 1_500_000])
    with pytest.raises(ValueError, match=r"5.bcf: truncated .bcf file \(1500000 bytes"):
        open_tilt_series(tmp_path)
    with pytest.raises(ValueError, match="truncated"):
        read_tilt(tmp_path / "5.bcf")


# ----------------------------------------------------------------------------- units, roles, tilts (issue 11/12)

@pytest.mark.parametrize("units, scale, nm", [("µm", 0.002, 2.0), ("Å", 20.0, 2.0), ("nm", 2.0, 2.0)])
def test_spectrum_image_pixel_size_in_any_unit(tmp_path, units, scale, nm):
    for a in (-10, 0, 10):
        write_si(tmp_path / f"tilt_{a:+d}.hspy", pixel_nm=scale, haadf=False)
        from chemtomo.io.microscope import _hs

        s = _hs().load(tmp_path / f"tilt_{a:+d}.hspy")
        for ax in s.axes_manager.navigation_axes:
            ax.units = units
        s.save(tmp_path / f"tilt_{a:+d}.hspy", overwrite=True)
    raw = open_tilt_series(tmp_path)
    assert raw.pixel_nm == pytest.approx(nm)
    assert raw.require_pixel_nm() == pytest.approx(nm) and raw.require_pixel_nm(3.0) == 3.0


def test_spectrum_image_without_pixel_unit_needs_pixel_nm(tmp_path):
    from chemtomo.io.microscope import _hs

    for a in (-10, 0, 10):
        p = write_si(tmp_path / f"tilt_{a:+d}.hspy", haadf=False)
        s = _hs().load(p)
        for ax in s.axes_manager.navigation_axes:
            ax.units = "px"
        s.save(p, overwrite=True)
    raw = open_tilt_series(tmp_path)
    assert raw.pixel_nm is None  # never a silent 1 nm
    with pytest.raises(ValueError, match=r"tilt_-10.hspy.*no length unit.*--pixel-nm"):
        raw.require_pixel_nm()
    assert raw.require_pixel_nm(1.2) == 1.2


def test_sem_beam_energy_on_raw_route(tmp_path):
    from chemtomo.io.microscope import _hs

    for a in (-10, 0, 10):
        p = write_si(tmp_path / f"tilt_{a:+d}.hspy", haadf=False)
        s = _hs().load(p)
        s.metadata.Acquisition_instrument.TEM.beam_energy = None
        del s.metadata.Acquisition_instrument.TEM
        s.metadata.set_item("Acquisition_instrument.SEM.beam_energy", 30.0)
        s.save(p, overwrite=True)
    assert open_tilt_series(tmp_path).beam_kev == 30.0


def test_single_or_two_tilts_refused(folder):
    files = find_tilt_files(folder)
    with pytest.raises(ValueError, match=r"tilt_-20.hspy \(one spectrum image 8x10\) is a single acquisition"
                                         r".*at least 3 tilts"):
        open_tilt_series(files[0])
    with pytest.raises(ValueError, match="is 2 tilts, not a tilt series: .*at least 3"):
        open_tilt_series(files[:2])


def test_radian_angles_refused_on_raw_route(folder):
    files = find_tilt_files(folder)
    with pytest.raises(ValueError, match=r"\(user\) .*look like radians"):
        open_tilt_series(files, angles_deg=np.radians([-20, -10, 0, 10, 20]))


def test_haadf_signal_names_an_image(folder):
    raw = open_tilt_series(folder, haadf_signal="HAADF")
    assert raw.has_haadf
    with pytest.raises(ValueError, match="disagree"):
        open_tilt_series(folder, haadf_title="HAADF", haadf_signal="DF-S")


@pytest.mark.parametrize("name, role", [
    ("HAADF", "HAADF"), ("DF-S", "DF"), ("DF4", "DF"), ("DF2", "DF"), ("DF", "DF"), ("BF", "BF"), ("ABF", "ABF"),
    ("ADF", "ADF"), ("MAADF", "ADF"), ("BSE", "BSE"), ("SE", "SE"), ("SE2", "SE"), ("InLens", "SE"), ("ETD", "SE"),
    ("Ch 1", "unknown"), ("IMG1", "unknown"),
])
def test_role_from_detector_name(name, role):
    from chemtomo.io.metadata import role_from_name

    assert role_from_name(name) == role


def test_length_units_converted_or_refused():
    from chemtomo.io.metadata import length_nm

    assert length_nm(0.018, "µm", "f") == pytest.approx(18.0)
    assert length_nm(3.6e-9, "m", "f") == pytest.approx(3.6)
    assert length_nm(15, "A", "f") == pytest.approx(1.5)  # Å, not ampere
    for bad in ("", None, "px", "pixels", "<undefined>", "foo", "keV", "1/nm"):
        with pytest.raises(ValueError, match="f: .*--pixel-nm"):
            length_nm(1.0, bad, "f")
    with pytest.raises(ValueError, match="--pixel-nm"):
        length_nm(0.0, "nm", "f")
