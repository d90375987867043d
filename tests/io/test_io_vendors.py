"""Real vendor files (RosettaSciIO's test data in ../shared/data/vendor-samples): read right, refused clearly.

Each is a single acquisition: the reader must get its spectrum image, images,
pixel size and beam energy right, choose the HAADF image by what it is, and
refuse it as a tilt series. Velox needs the ``sparse`` library (RosettaSciIO).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from chemtomo.io.microscope import open_tilt_series, read_tilt, scan_tilt_file

REPO = Path(__file__).resolve().parents[2]
VENDOR = REPO / ".." / "shared" / "data" / "vendor-samples"
VELOX = VENDOR / "velox" / "Test SI 16x16 215 kx.emd"
VELOX_REDUCED = VENDOR / "velox" / "Test SI 16x16 ReducedData 215 kx.emd"
BCF_TEM = VENDOR / "bruker" / "test_TEM.bcf"
BCF_SEM = VENDOR / "bruker" / "bcf_v2_50x50px.bcf"
BCF_NOPE = VENDOR / "bruker" / "Nope.bcf"
JEOL_ASW = VENDOR / "jeol" / "rawdata.ASW"
JEOL_PTS = VENDOR / "jeol" / "Sample" / "00_View000" / "View000_0000006.pts"

pytestmark = pytest.mark.shared_data


@pytest.fixture(autouse=True)
def _need_vendor():
    if not VENDOR.is_dir():
        pytest.skip(f"vendor samples not found at {VENDOR.resolve()} (../shared/data absent)")


def test_velox_emd_single_acquisition_read():
    pytest.importorskip("sparse")
    info = scan_tilt_file(VELOX)
    assert info.image_shape == (16, 16)
    assert info.energy_axis[2] == 4096 and info.energy_axis[1] == pytest.approx(0.01)
    assert info.pixel_nm == pytest.approx(3.5992, rel=1e-4)  # Velox stores metres: converted
    assert info.beam_kev == 300.0
    assert info.haadf == "in file"
    roles = dict(info.images)
    assert roles["HAADF"] == "HAADF"
    assert roles["C (SuperXG2)"] == "EDS map"  # elemental maps are never HAADF candidates
    t = read_tilt(VELOX, 0.0)
    assert t.spectrum_image.data.shape == (16, 16, 4096)
    assert float(t.spectrum_image.data.sum()) > 0
    assert t.haadf.data.shape == (16, 16)


def test_velox_emd_refused_as_tilt_series():
    pytest.importorskip("sparse")
    with pytest.raises(ValueError, match=r"215 kx.emd .*single acquisition.*at least 3 tilts"):
        open_tilt_series(VELOX)


def test_velox_reduced_data_has_no_spectrum_image():
    pytest.importorskip("sparse")
    with pytest.raises(ValueError, match="holds no EDS spectrum image .*without its spectrum stream"):
        scan_tilt_file(VELOX_REDUCED)


def test_velox_df_image_never_taken_as_haadf(tmp_path):
    """The real Velox file with its HAADF detector renamed DF-S: no HAADF unless chosen."""
    pytest.importorskip("sparse")
    from chemtomo.io.microscope import _hs, quiet_hyperspy

    hs = _hs()
    with quiet_hyperspy():
        sigs = hs.load(VELOX)
    si = next(s for s in sigs if s.axes_manager.navigation_dimension == 2)
    img = next(s for s in sigs if str(s.metadata.General.title) == "HAADF")
    img.metadata.General.title = "DF-S"
    img.original_metadata.set_item("BinaryResult.Detector", "DF-S")
    files = []
    for a in (-10, 0, 10):
        si.save(tmp_path / f"df_{a}deg.hspy")
        files.append(tmp_path / f"df_{a}deg.hspy")
    # the file's signals: the DF-S image is listed, not used, unless named
    from chemtomo.io.vendor import _image_list, _pick_haadf

    assert _pick_haadf([si, img], None) is None
    assert _image_list([si, img]) == [("DF-S", "DF")]
    assert _pick_haadf([si, img], "DF-S") is img
    with pytest.raises(ValueError, match=r"no image named 'BF' .*DF-S \[DF\].*--haadf-signal"):
        _pick_haadf([si, img], "BF", "f.emd")
    raw = open_tilt_series(files)
    assert not raw.has_haadf


def test_bruker_tem_bcf():
    info = scan_tilt_file(BCF_TEM)
    assert info.image_shape == (64, 64)
    assert info.pixel_nm == pytest.approx(0.771, rel=1e-3)  # stored in µm
    assert info.beam_kev == 200.0
    assert info.haadf == "in file" and info.images == (("HAADF", "HAADF"),)
    t = read_tilt(BCF_TEM, 0.0)
    assert t.spectrum_image.data.shape == (64, 64, 2048) and t.haadf.data.shape == (64, 64)
    with pytest.raises(ValueError, match="single acquisition"):
        open_tilt_series(BCF_TEM)


def test_bruker_sem_bcf_unnamed_channel_only_by_choice():
    info = scan_tilt_file(BCF_SEM)
    assert info.beam_kev == 20.0  # from the SEM key
    assert info.pixel_nm == pytest.approx(11.808, rel=1e-4)
    assert info.haadf is None  # 'Ch 1' is no HAADF detector
    assert info.images == (("Ch 1", "unknown"), ("Ch 1", "unknown"))
    t = read_tilt(BCF_SEM, 0.0, haadf_signal="Ch 1")
    assert t.haadf.data.shape == (50, 50)  # the image on the spectrum image's grid, not the 1100x825 one


def test_not_a_bcf_named_bcf():
    with pytest.raises(ValueError, match=r"Nope.bcf: not a readable Bruker .bcf"):
        scan_tilt_file(BCF_NOPE)


def test_jeol_asw_and_pts():
    for path in (JEOL_ASW, JEOL_PTS):
        info = scan_tilt_file(path)
        assert info.image_shape == (512, 512)
        assert info.pixel_nm == pytest.approx(8.6914, rel=1e-4)
        assert info.beam_kev == 200.0
        assert info.haadf is None
        with pytest.raises(ValueError, match="single acquisition"):
            open_tilt_series(path)
    roles = dict(scan_tilt_file(JEOL_ASW).images)
    assert roles["IMG1"] == "unknown" and roles["Fe K"] == "EDS map"


def test_jeol_asw_image_by_choice():
    t = read_tilt(JEOL_ASW, 0.0, haadf_signal="IMG1")
    assert t.haadf.data.shape == (512, 512)
    assert t.spectrum_image.axes_manager.navigation_shape == (512, 512)


def test_folder_of_asw_files_accepted(tmp_path):
    """open_tilt_series takes .ASW files (copies of one acquisition named by angle)."""
    for a in (-20, 0, 20):
        d = tmp_path / f"tilt_{a:+d}"
        shutil.copytree(JEOL_ASW.parent, d)
    files = [tmp_path / f"tilt_{a:+d}" / "rawdata.ASW" for a in (-20, 0, 20)]
    raw = open_tilt_series(files, angles_deg=[-20, 0, 20])
    assert len(raw) == 3 and raw.beam_kev == 200.0 and not raw.has_haadf
    assert any("IMG1 [unknown]" in n for n in raw.notes)
    assert np.allclose(raw.angles_deg, [-20, 0, 20])
