"""Alignment with a tilt set per modality: the HAADF aligned densely, the sparse EDS tilts placed on it.

A compact particle (its centre of mass on the tilt axis) is projected at 31 HAADF tilts and,
with two lines of other contrast and Poisson noise, at 9 EDS tilts over +-60 degrees: 3 EDS
tilts shared with the HAADF, 6 between its tilts. Known random shifts are applied to every
image (an EDS map shifted from the HAADF image of its tilt by a small registration offset),
and an axis offset common to all; preprocessing must recover every shift within the stated
tolerance (pixels), both modalities.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_pre_align import blob_volume, displace, project

from chemtomo.preprocess import PreprocessOptions, preprocess_tilt_series
from chemtomo.preprocess.place import place_eds_tilts, rotate_shift
from chemtomo.preprocess.transform import Alignment, transform_image

HAADF_ANGLES = np.linspace(-60.0, 60.0, 31)  # every 4 degrees
EDS_ANGLES = np.array([-60.0, -45.0, -30.0, -15.0, 0.0, 15.0, 30.0, 45.0, 60.0])  # -60, 0, 60 shared
AXIS_OFFSET_PX = 1.5
#: Largest error (pixels) of the recovered shifts (tilt-axis offset included), measured 0.39 (HAADF:
#: the cross-correlation chain over 15 neighbours each side, and the offset, 0.32 px off) and 0.48
#: (EDS: the HAADF's error where it takes a HAADF image's shift, plus the registration of noisy maps of
#: another contrast); RMS over the tilts measured 0.18 and 0.19.
HAADF_TOL_PX = 0.5
EDS_TOL_PX = 0.6
RMS_TOL_PX = 0.25
#: At a shared tilt, the EDS map's shift relative to its HAADF image's against the true relative
#: shift (the registration alone): measured 0.095 px at most.
SHARED_TOL_PX = 0.2


@pytest.fixture(scope="module")
def per_modality():
    """Clean projections, the displaced stacks and the true shifts (applied to align them)."""
    vol = blob_volume(48, 25, seed=2, radius=(1.5, 3.0), extent=0.18, centre=True)
    rng = np.random.default_rng(7)
    part = rng.random(vol.shape) < 0.5  # two "elements": the blobs' voxels split at random
    a, b = np.where(part, vol, 0), np.where(part, 0, vol)
    haadf = project(vol, HAADF_ANGLES)
    lines = {"Ag_La": 40 * project(a, EDS_ANGLES), "Au_Ma": 15 * project(b, EDS_ANGLES)}
    true_h = rng.uniform(-3, 3, (HAADF_ANGLES.size, 2))
    true_h[15] = 0  # the 0-degree tilt is the reference
    true_e = rng.uniform(-3, 3, (EDS_ANGLES.size, 2))
    shared = {0: 0, 4: 15, 8: 30}
    for i, j in shared.items():  # scanned with the HAADF image of its tilt, drifted by up to 1 px
        true_e[i] = true_h[j] + rng.uniform(-1, 1, 2)
    off = np.array([0.0, AXIS_OFFSET_PX])
    moved_h = displace(haadf, -true_h + off)
    moved_e = {ln: rng.poisson(np.clip(displace(v, -true_e + off), 0, None)).astype(np.float32)
               for ln, v in lines.items()}
    return {"haadf": haadf, "lines": lines, "moved_h": moved_h, "moved_e": moved_e,
            "true_h": true_h - off, "true_e": true_e - off}


def run(d, **kw):
    opts = PreprocessOptions(rotation=False, bin_factor=1, shadowing=None, pad=0, filter_sigma=None)
    return preprocess_tilt_series(d["moved_e"], d["moved_h"], EDS_ANGLES, 1.0, opts, haadf_angles_deg=HAADF_ANGLES,
                                  progress=False, **kw)


def test_rotate_shift_is_the_transform_rotation():
    y, x = np.indices((40, 40))
    im = np.exp(-((y - 14) ** 2 / 8 + (x - 25) ** 2 / 18))  # smooth: two interpolations agree with one
    r, rot, s = np.array([1.3, -2.1]), 3.0, np.array([0.4, 0.7])
    two = transform_image(transform_image(im, 0.0, r, order=3), rot, s, order=3)
    one = transform_image(im, rot, s + rotate_shift(r, rot), order=3)
    assert np.abs(one - two).max() < 2e-3  # measured 5e-4; the opposite rotation: 0.07
    wrong = transform_image(im, rot, s + rotate_shift(r, -rot), order=3)
    assert np.abs(wrong - two).max() > 0.03


@pytest.fixture(scope="module")
def preprocessed(per_modality):
    return run(per_modality)


def test_per_modality_shifts_recovered(per_modality, preprocessed):
    d, pre = per_modality, preprocessed
    s = pre.series
    np.testing.assert_array_equal(s.angles_deg, EDS_ANGLES)
    np.testing.assert_array_equal(s.haadf_angles, HAADF_ANGLES)
    assert s.haadf.shape[0] == 31 and s.shape[0] == 9
    err_h = np.abs(pre.alignment.total_shifts_px - d["true_h"]).max()
    err_e = np.abs(pre.eds_alignment.total_shifts_px - d["true_e"]).max()
    assert err_h < HAADF_TOL_PX, f"HAADF max shift error {err_h:.3f} px"
    assert err_e < EDS_TOL_PX, f"EDS max shift error {err_e:.3f} px"
    for name, al, true in (("HAADF", pre.alignment, d["true_h"]), ("EDS", pre.eds_alignment, d["true_e"])):
        rms = float(np.sqrt(np.mean((al.total_shifts_px - true) ** 2)))
        assert rms < RMS_TOL_PX, f"{name} RMS shift error {rms:.3f} px"
    for i, j in ((0, 0), (4, 15), (8, 30)):
        rel = pre.eds_alignment.total_shifts_px[i] - pre.alignment.total_shifts_px[j]
        err = np.abs(rel - (d["true_e"][i] - d["true_h"][j])).max()
        assert err < SHARED_TOL_PX, f"EDS tilt {i} on HAADF tilt {j}: registration error {err:.3f} px"
    pl = pre.eds_alignment.diagnostics["placement"]
    assert pl["reference"].count("haadf_image") == 3 and pl["haadf_index"][4] == 15
    assert pre.registration_px is None and "3 registered to the HAADF image" in " ".join(pre.notes)
    assert "eds_alignment" in pre.summary()
    # the aligned EDS total lies on the clean projections' total (Poisson noise aside)
    clean = sum(d["lines"].values())
    got = sum(s.eds.values())
    inner = (slice(None), slice(8, -8), slice(8, -8))
    assert np.abs(got - clean)[inner].mean() < 0.1 * clean[inner].mean() + 1.5


def test_given_alignments_are_reused(per_modality, preprocessed):
    d, pre = per_modality, preprocessed
    again = run(d, alignment=pre.alignment, eds_alignment=pre.eds_alignment)
    np.testing.assert_array_equal(again.series.haadf, pre.series.haadf)
    for ln in pre.series.lines:
        np.testing.assert_array_equal(again.series.eds[ln], pre.series.eds[ln])


def test_register_none_takes_the_haadf_shift_at_shared_tilts(per_modality):
    d = per_modality
    pre = run(d, register="none")
    al, eal = pre.alignment, pre.eds_alignment
    for i, j in ((0, 0), (4, 15), (8, 30)):
        np.testing.assert_array_equal(eal.shifts_px[i], al.shifts_px[j])
    assert eal.axis_offset_px == al.axis_offset_px


def test_equal_angle_sets_are_the_shared_path_bit_for_bit(per_modality):
    d = per_modality
    h = d["moved_h"][::5][:7]  # 7 HAADF images standing in for the EDS tilts
    ang = HAADF_ANGLES[::5][:7]
    eds = {ln: np.abs(h) * k for ln, k in (("Ag_La", 2.0), ("Au_Ma", 0.5))}
    opts = PreprocessOptions(rotation=False, offset=False, bin_factor=1, filter_sigma=None)
    a = preprocess_tilt_series(eds, h, ang, 1.0, opts, progress=False)
    b = preprocess_tilt_series(eds, h, ang, 1.0, opts, progress=False, haadf_angles_deg=ang.copy())
    assert b.series.shares_angles and b.eds_alignment is None
    np.testing.assert_array_equal(a.series.haadf, b.series.haadf)
    np.testing.assert_array_equal(a.alignment.shifts_px, b.alignment.shifts_px)
    for ln in eds:
        np.testing.assert_array_equal(a.series.eds[ln], b.series.eds[ln])


def test_bad_per_modality_inputs(per_modality):
    d = per_modality
    with pytest.raises(ValueError, match="31 images but 30 HAADF tilt angles"):
        preprocess_tilt_series(d["moved_e"], d["moved_h"], EDS_ANGLES, 1.0, haadf_angles_deg=HAADF_ANGLES[:-1],
                               progress=False)
    with pytest.raises(ValueError, match="no HAADF stack"):
        preprocess_tilt_series(d["moved_e"], None, EDS_ANGLES, 1.0, haadf_angles_deg=HAADF_ANGLES, progress=False)
    with pytest.raises(ValueError, match="recorded twice"):
        preprocess_tilt_series(d["moved_e"], d["moved_h"][:9], EDS_ANGLES, 1.0, haadf_angles_deg=EDS_ANGLES + 0.01,
                               progress=False)
    with pytest.raises(ValueError, match="bin or crop the HAADF"):
        preprocess_tilt_series(d["moved_e"], d["moved_h"][:, :, :40], EDS_ANGLES, 1.0,
                               haadf_angles_deg=HAADF_ANGLES, progress=False)
    with pytest.raises(ValueError, match="eds_alignment is for a HAADF"):
        preprocess_tilt_series(d["moved_e"], None, EDS_ANGLES, 1.0,
                               eds_alignment=Alignment.identity(EDS_ANGLES, (48, 48)), progress=False)
    with pytest.raises(ValueError, match="method must be one of"):
        place_eds_tilts(d["moved_e"]["Ag_La"], EDS_ANGLES, d["moved_h"],
                        Alignment.identity(HAADF_ANGLES, (48, 48)), method="phase")


def test_reconstructed_and_written_with_both_tilt_sets(preprocessed, tmp_path):
    """The per-modality preprocessed series through the raw route's reconstruction and result groups."""
    from chemtomo.io.experimental_result import read_experimental, write_experimental_groups
    from chemtomo.io.factors import resolve_factors
    from chemtomo.io.result import write_result
    from chemtomo.pipeline.experimental import reconstruct_experimental

    pre = preprocessed
    fac = resolve_factors("physics", pre.series.lines, 200.0, 1.0)
    res = reconstruct_experimental(pre.series, fac, methods=["eds_sirt", "hebt_sirt"], n_iter=5, filter_sigma=None,
                                   mask_method="otsu", chunk_slices=48, progress=False)
    assert res["hebt_sirt"].response_ratios is not None and res["hebt_sirt"].response_ratios.basis
    path = tmp_path / "result.h5"
    write_result(path, res["hebt_sirt"], {})
    write_experimental_groups(path, res, "hebt_sirt", pre)
    back = read_experimental(path)
    np.testing.assert_array_equal(back["tiltseries"]["angles_deg"], EDS_ANGLES)
    np.testing.assert_array_equal(back["tiltseries"]["haadf_angles_deg"], HAADF_ANGLES)
    assert back["tiltseries"]["haadf"].shape[0] == 31 and back["tiltseries"]["eds"]["Ag_La"].shape[0] == 9
    np.testing.assert_array_equal(back["alignment"]["angles_deg"], HAADF_ANGLES)
    np.testing.assert_array_equal(back["alignment"]["eds"]["total_shifts_px"], pre.eds_alignment.total_shifts_px)
    assert back["alignment"]["eds"]["diagnostics"]["placement"]["haadf_index"][4] == 15


def test_signals_bring_their_own_tilts(per_modality):
    from chemtomo.io.hspy import to_signal

    d = per_modality
    eds = {ln: to_signal(v, EDS_ANGLES, 1.0, ln) for ln, v in d["moved_e"].items()}
    pre = preprocess_tilt_series(eds, to_signal(d["moved_h"], HAADF_ANGLES, 1.0, "HAADF"), align="none",
                                 bin_factor=1, pad=0, progress=False)
    np.testing.assert_array_equal(pre.series.haadf_angles, HAADF_ANGLES)
    np.testing.assert_array_equal(pre.series.angles_deg, EDS_ANGLES)
    assert pre.eds_alignment.method == "none" and not np.any(pre.eds_alignment.shifts_px)
    sig = pre.to_signals()
    assert sig["HAADF"].data.shape[0] == 31 and sig["Ag_La"].data.shape[0] == 9


def test_binned_reprojection_places_the_eds_tilts(per_modality):
    """With the CLI's 2x2 binning the reprojection and its registration are binned: measured 0.30 / 0.39 px."""
    d = per_modality
    pre = run(d, bin_factor=2)
    assert pre.eds_alignment.diagnostics["placement"]["reprojection_bin"] == 2
    assert np.abs(pre.alignment.total_shifts_px - d["true_h"]).max() < HAADF_TOL_PX
    assert np.abs(pre.eds_alignment.total_shifts_px - d["true_e"]).max() < EDS_TOL_PX
    assert pre.series.haadf.shape == (31, 24, 24) and pre.series.pixel_nm == 2.0
