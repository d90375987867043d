"""Tilt-series stacks written by the tests (HyperSpy, etspy's layout, mrcfile, tifffile) and bad inputs.

The projections are of a phantom of Gaussian blobs in parallel beam, so a
slice's total signal is the same at every tilt: the layout check has real
physics to work with.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chemtomo.io.hspy import read_stack, read_tilt_series, to_signal
from chemtomo.io.orientation import layout_scores

ANGLES = np.arange(-60.0, 61.0, 15.0)
PIXEL_NM = 1.5


def projections(angles=ANGLES, ny=20, nu=32):
    """(n_tilts, ny, nu) projections of three blobs, tilt axis along y (chemtomo's layout)."""
    blobs = [(4.0, -6.0, 2.0, 5.0), (12.0, 5.0, -4.0, 3.0), (15.0, 0.0, 6.0, 4.0)]  # y, x, z, amplitude
    y = np.arange(ny)[:, None]
    u = np.arange(nu)[None, :] - (nu - 1) / 2
    out = np.zeros((len(angles), ny, nu))
    for i, t in enumerate(np.radians(angles)):
        for yb, xb, zb, amp in blobs:
            c = xb * np.cos(t) + zb * np.sin(t)
            out[i] += amp * np.exp(-((y - yb) ** 2 + (u - c) ** 2) / (2 * 1.8 ** 2))
    return out.astype(np.float32)


def _hs():
    from chemtomo.io.microscope import _hs as h

    return h()


def write_etspy(path, stack_rows, angles=ANGLES, *, with_tilts=True, units="nm", scale=PIXEL_NM):
    """A stack as etspy saves it: tilt axis along x (transposed), nav axis 'Projections', Tomography keys."""
    s = _hs().signals.Signal2D(np.ascontiguousarray(np.swapaxes(stack_rows, 1, 2)))
    ax = s.axes_manager
    ax[0].name, ax[0].units = "Projections", "degrees"
    for i in (1, 2):
        ax[i].units, ax[i].scale = units, scale
    s.metadata.set_item("Tomography", {"cropped": False, "tiltaxis": 0, "xshift": 0, "yshift": 0})
    if with_tilts:
        s.metadata.set_item("Tomography.tilts", list(map(float, angles)))
    s.metadata.set_item("Acquisition_instrument.TEM.beam_energy", 200.0)
    s.save(path, overwrite=True)
    return path


# ----------------------------------------------------------------------------- orientation

def test_layout_scores_tell_the_tilt_axis():
    p = projections()
    rows, cols = layout_scores(p)
    assert rows < 0.01 and cols > 0.1  # slices conserve their mass with tilt; columns do not
    rows_t, cols_t = layout_scores(np.swapaxes(p, 1, 2))
    assert cols_t < 0.01 and rows_t > 0.1


def test_chemtomo_file_reads_as_written(tmp_path):
    p = projections()
    to_signal(p, ANGLES, PIXEL_NM, "HAADF", {"beam_kev": 120.0}).save(tmp_path / "h.hspy")
    data, angles, px, md = read_stack(tmp_path / "h.hspy")
    np.testing.assert_array_equal(data, p)
    assert angles.tolist() == ANGLES.tolist() and px == PIXEL_NM
    assert md["tilt_axis"] == "rows" and md["beam_kev"] == 120.0


def test_etspy_layout_transposed_to_chemtomo(tmp_path):
    p = projections()
    write_etspy(tmp_path / "etspy.hspy", p)
    data, angles, px, md = read_stack(tmp_path / "etspy.hspy")
    np.testing.assert_array_equal(data, p)  # the same stack as the correctly oriented one: the same volume
    assert md["tilt_axis"] == "columns" and md["beam_kev"] == 200.0
    assert angles.tolist() == ANGLES.tolist() and px == PIXEL_NM
    same, *_ = read_stack(tmp_path / "etspy.hspy", tilt_axis="columns")
    np.testing.assert_array_equal(same, p)


def test_wrong_tilt_axis_refused(tmp_path):
    p = projections()
    write_etspy(tmp_path / "etspy.hspy", p)
    with pytest.raises(ValueError, match=r"tilt_axis='rows'.*data say it runs along x.*--tilt-axis columns"):
        read_stack(tmp_path / "etspy.hspy", tilt_axis="rows")
    to_signal(p, ANGLES, PIXEL_NM, "HAADF").save(tmp_path / "c.hspy")
    with pytest.raises(ValueError, match="data say it runs along y"):
        read_stack(tmp_path / "c.hspy", tilt_axis="x")
    with pytest.raises(ValueError, match="tilt_axis must be 'rows'"):
        read_stack(tmp_path / "c.hspy", tilt_axis="diagonal")


def test_unlabelled_stack_with_axis_along_x_refused(tmp_path):
    """A plain HyperSpy stack (no convention stated) whose tilt axis runs along x: refused, not reconstructed."""
    s = _hs().signals.Signal2D(np.swapaxes(projections(), 1, 2).copy())
    s.axes_manager[0].units, s.axes_manager[0].offset, s.axes_manager[0].scale = "degrees", -60.0, 15.0
    for i in (1, 2):
        s.axes_manager[i].units, s.axes_manager[i].scale = "nm", 1.0
    s.save(tmp_path / "plain.hspy")
    with pytest.raises(ValueError, match="no stated convention.*runs along x"):
        read_stack(tmp_path / "plain.hspy")
    data, angles, *_ = read_stack(tmp_path / "plain.hspy", tilt_axis="columns")
    np.testing.assert_array_equal(data, projections())
    assert angles.tolist() == ANGLES.tolist()  # from the navigation axis in degrees


# ----------------------------------------------------------------------------- angles

def test_angles_in_radians_refused(tmp_path):
    p = projections()
    write_etspy(tmp_path / "rad.hspy", p, angles=np.radians(ANGLES))
    with pytest.raises(ValueError, match="look like radians.*degrees"):
        read_stack(tmp_path / "rad.hspy")
    s = _hs().signals.Signal2D(p)
    s.axes_manager[0].units, s.axes_manager[0].scale = "rad", 0.26
    for i in (1, 2):
        s.axes_manager[i].units = "nm"
    s.save(tmp_path / "radaxis.hspy")
    with pytest.raises(ValueError, match="navigation axis .* is in radians"):
        read_stack(tmp_path / "radaxis.hspy")
    with pytest.raises(ValueError, match="look like radians"):
        read_stack(tmp_path / "radaxis.hspy", np.radians(ANGLES))


def test_projections_axis_without_tilts_refused(tmp_path):
    write_etspy(tmp_path / "e.hspy", projections(), with_tilts=False)
    with pytest.raises(ValueError, match="'Projections' counts images"):
        read_stack(tmp_path / "e.hspy")
    _, angles, *_ = read_stack(tmp_path / "e.hspy", ANGLES)
    assert angles.tolist() == ANGLES.tolist()


def test_rawtlt_beside_hspy(tmp_path):
    s = _hs().signals.Signal2D(projections())
    for i in (1, 2):
        s.axes_manager[i].units, s.axes_manager[i].scale = "nm", 1.0
    s.save(tmp_path / "s.hspy")
    np.savetxt(tmp_path / "s.rawtlt", ANGLES)
    _, angles, _, md = read_stack(tmp_path / "s.hspy")
    assert angles.tolist() == ANGLES.tolist() and md["angle_source"].endswith("s.rawtlt")


# ----------------------------------------------------------------------------- pixel size, beam energy

@pytest.mark.parametrize("units, scale, nm", [("µm", 0.018, 18.0), ("um", 0.0015, 1.5), ("Å", 15.0, 1.5),
                                              ("A", 15.0, 1.5), ("pm", 1500.0, 1.5), ("m", 1.5e-9, 1.5)])
def test_pixel_size_in_any_length_unit(tmp_path, units, scale, nm):
    write_etspy(tmp_path / "u.hspy", projections(), units=units, scale=scale)
    assert read_stack(tmp_path / "u.hspy")[2] == pytest.approx(nm, rel=1e-9)


@pytest.mark.parametrize("units", ["", "px", "foo", "1/nm"])
def test_pixel_size_without_length_unit_refused(tmp_path, units):
    write_etspy(tmp_path / "u.hspy", projections(), units=units, scale=2.0)
    with pytest.raises(ValueError, match=r"u.hspy.*--pixel-nm"):
        read_stack(tmp_path / "u.hspy")
    assert read_stack(tmp_path / "u.hspy", pixel_nm=2.5)[2] == 2.5


def test_beam_energy_from_sem_key_on_the_series(tmp_path):
    s = to_signal(projections(), ANGLES, PIXEL_NM, "HAADF")
    s.metadata.set_item("Acquisition_instrument.SEM.beam_energy", 30.0)
    s.save(tmp_path / "h.hspy")
    e = to_signal(projections(), ANGLES, PIXEL_NM, "Fe_Ka")
    e.save(tmp_path / "fe.hspy")
    series = read_tilt_series({"Fe_Ka": tmp_path / "fe.hspy"}, tmp_path / "h.hspy")
    assert series.metadata["beam_kev"] == 30.0


def test_channels_on_different_grids_refused(tmp_path):
    to_signal(projections(), ANGLES, 3.0, "HAADF").save(tmp_path / "h.hspy")
    to_signal(projections(), ANGLES, 1.5, "Fe_Ka").save(tmp_path / "fe.hspy")
    with pytest.raises(ValueError, match="pixel sizes differ"):
        read_tilt_series({"Fe_Ka": tmp_path / "fe.hspy"}, tmp_path / "h.hspy")


def test_df_stack_not_haadf_unless_chosen(tmp_path):
    s = to_signal(projections(), ANGLES, PIXEL_NM, "DF-S")
    s.save(tmp_path / "df.hspy")
    with pytest.raises(ValueError, match=r"df.hspy is a DF image \(DF-S\), not HAADF.*--haadf-signal DF-S"):
        read_tilt_series({}, tmp_path / "df.hspy")
    series = read_tilt_series({}, tmp_path / "df.hspy", haadf_signal="DF-S")  # HAADF-only series
    assert series.haadf.shape == (ANGLES.size, 20, 32) and series.eds == {}


# ----------------------------------------------------------------------------- MRC and TIFF

def _write_mrc(path, data, voxel_a=None):
    import mrcfile

    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        if voxel_a is not None:
            m.voxel_size = voxel_a
    return path


def test_mrc_with_rawtlt(tmp_path):
    p = projections()
    _write_mrc(tmp_path / "ts.mrc", p, voxel_a=15.0)
    np.savetxt(tmp_path / "ts.rawtlt", ANGLES, fmt="%.2f")
    data, angles, px, md = read_stack(tmp_path / "ts.mrc")
    np.testing.assert_array_equal(data, p)
    assert angles.tolist() == ANGLES.tolist() and px == pytest.approx(1.5)
    assert md["tilt_axis"] == "rows"


def test_ali_prefers_tlt(tmp_path):
    _write_mrc(tmp_path / "ts.ali", projections(), voxel_a=10.0)
    np.savetxt(tmp_path / "ts.rawtlt", ANGLES)
    np.savetxt(tmp_path / "ts.tlt", ANGLES + 0.5)
    assert read_stack(tmp_path / "ts.ali")[1].tolist() == (ANGLES + 0.5).tolist()
    np.savetxt(tmp_path / "ts.tlt", ANGLES[:-1])
    with pytest.raises(ValueError, match=r"ts.tlt holds 8 tilt angles but the stack has 9 images"):
        read_stack(tmp_path / "ts.ali")


def test_mrc_without_voxel_size_or_angles(tmp_path):
    _write_mrc(tmp_path / "ts.st", projections())
    with pytest.raises(ValueError, match=r"ts.st: no tilt angles found.*ts.rawtlt"):
        read_stack(tmp_path / "ts.st")
    with pytest.raises(ValueError, match=r"ts.st: the MRC header states no voxel size.*--pixel-nm"):
        read_stack(tmp_path / "ts.st", ANGLES)
    assert read_stack(tmp_path / "ts.st", ANGLES, pixel_nm=2.0)[2] == 2.0


def test_int16_mrc_holding_unsigned_data(tmp_path):
    u = (projections() / projections().max() * 40000 + 20000).astype(np.uint16)  # 20000..60000
    _write_mrc(tmp_path / "w.mrc", u.view(np.int16), voxel_a=15.0)
    np.savetxt(tmp_path / "w.rawtlt", ANGLES)
    data, _, _, md = read_stack(tmp_path / "w.mrc")
    np.testing.assert_array_equal(data, u.astype(np.float32))
    assert any("read as uint16" in n for n in md["notes"])
    signed = (projections() * 100 - 30).astype(np.int16)  # small negatives: genuine signed data, kept
    _write_mrc(tmp_path / "s.mrc", signed, voxel_a=15.0)
    np.savetxt(tmp_path / "s.rawtlt", ANGLES)
    np.testing.assert_array_equal(read_stack(tmp_path / "s.mrc")[0], signed.astype(np.float32))
    odd = signed.copy()
    odd[0, 0, :3] = [-20000, -15000, -12000]
    _write_mrc(tmp_path / "s.mrc", odd, voxel_a=15.0)
    with pytest.raises(ValueError, match=r"s.mrc: the MRC header says int16 .*neither"):
        read_stack(tmp_path / "s.mrc")


def test_tiff_stack_with_angle_file(tmp_path):
    import tifffile

    p = projections()
    tifffile.imwrite(tmp_path / "ts.tif", p, imagej=True, resolution=(1 / 0.0015, 1 / 0.0015),
                     metadata={"unit": "um", "axes": "ZYX"})
    np.savetxt(tmp_path / "ts_angles.txt", ANGLES)
    data, angles, px, _ = read_stack(tmp_path / "ts.tif")
    np.testing.assert_array_equal(data, p)
    assert px == pytest.approx(1.5) and angles.tolist() == ANGLES.tolist()
    tifffile.imwrite(tmp_path / "plain.tif", p)
    np.savetxt(tmp_path / "plain.rawtlt", ANGLES)
    with pytest.raises(ValueError, match=r"plain.tif: the TIFF states no pixel size .*--pixel-nm"):
        read_stack(tmp_path / "plain.tif")
    assert read_stack(tmp_path / "plain.tif", pixel_nm=1.5)[2] == 1.5


# ----------------------------------------------------------------------------- unreadable inputs

def _bad_files(tmp_path) -> dict[str, Path]:
    import h5py

    good = tmp_path / "good.hspy"
    to_signal(projections(), ANGLES, PIXEL_NM, "HAADF").save(good)
    out = {}
    out["empty"] = tmp_path / "empty.hspy"
    out["empty"].write_bytes(b"")
    out["truncated"] = tmp_path / "trunc.hspy"
    out["truncated"].write_bytes(good.read_bytes()[:2000])
    out["png"] = tmp_path / "image.hspy"
    out["png"].write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 200)
    out["text"] = tmp_path / "notes.hspy"
    out["text"].write_text("angle,counts\n0,1\n")
    out["foreign_hdf5"] = tmp_path / "other.hspy"
    with h5py.File(out["foreign_hdf5"], "w") as f:
        f["data"] = np.ones((3, 4, 5))
    out["foreign_h5"] = tmp_path / "other.h5"
    with h5py.File(out["foreign_h5"], "w") as f:
        f["data"] = np.ones((3, 4, 5))
    out["bad_mrc"] = tmp_path / "bad.mrc"
    out["bad_mrc"].write_text("not an mrc")
    out["bad_tif"] = tmp_path / "bad.tif"
    out["bad_tif"].write_text("not a tiff")
    return out


def test_unreadable_inputs_named_clearly(tmp_path):
    for kind, path in _bad_files(tmp_path).items():
        with pytest.raises(ValueError) as info:
            read_stack(path, ANGLES)
        msg = str(info.value)
        assert str(path) in msg, (kind, msg)
        assert "Traceback" not in msg
        assert any(w in msg for w in ("empty file", "cannot be read", "not a readable")), (kind, msg)
        with pytest.raises(ValueError, match="cannot be read|empty file|not a readable"):
            read_tilt_series({"Fe_Ka": path})


def test_unsupported_suffix(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    with pytest.raises(ValueError, match=r"x.png: unsupported stack type '.png'"):
        read_stack(tmp_path / "x.png")
    with pytest.raises(FileNotFoundError):
        read_stack(tmp_path / "nope.hspy")
