"""Bad data and out-of-range physics through the API: refused with a message naming the problem, or warned.

Issue 12, the data-sanity and physical-range part: a tilt series that is not one,
degenerate channels, a response-ratio fit that cannot be trusted, thresholds
that select nothing or everything, factor tables beyond physics, beam energies
beyond the models. Each case asserts the error's type and that the message names
the problem (and the value or the fix); warnings are asserted on the log.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from chemtomo.geometry import MIN_TILTS
from chemtomo.io.factors import read_factor_table, resolve_factors
from chemtomo.physics import compute_factors, paper_table2
from chemtomo.quantify import check_threshold, particle_mask, quantify
from chemtomo.reconstruct.hebt import R2_FLOOR, estimate_response_ratios
from chemtomo.tiltseries import TiltSeries

ANGLES = np.linspace(-60.0, 60.0, 7)
SHAPE = (7, 2, 8)


def _stack(seed=0, shape=SHAPE, scale=10.0):
    return np.random.default_rng(seed).poisson(scale, shape).astype(np.float32) + 1


def _series(**kw):
    args = {"angles_deg": ANGLES, "pixel_nm": 1.0, "eds": {"Ag_La": _stack(1), "Au_Ma": _stack(2)},
            "haadf": _stack(3, scale=100.0)}
    args.update(kw)
    return TiltSeries(**args)


def _with(array, index, value):
    a = np.array(array, dtype=np.float32)
    a[index] = value
    return a


# --------------------------------------------------------------------------- TiltSeries

SERIES_CASES = {
    "duplicate angle": (dict(angles_deg=[-60, -40, -20, 0, 0, 40, 60]), "repeat"),
    "angle beyond +90": (dict(angles_deg=[-60, -40, -20, 0, 20, 40, 95]), "within [-90, 90]"),
    "angle beyond -90": (dict(angles_deg=[-120, -40, -20, 0, 20, 40, 60]), "within [-90, 90]"),
    "angles in radians": (dict(angles_deg=np.radians(ANGLES)), "look like radians"),
    "NaN angle": (dict(angles_deg=_with(ANGLES, 3, np.nan)), "finite"),
    "fewer angles than images": (dict(angles_deg=ANGLES[:6]), "7 images but there are 6 tilt angles"),
    "EDS images of another size": (dict(eds={"Ag_La": _stack(1), "Au_Ma": _stack(2, shape=(7, 2, 9))}),
                                   "same grid"),
    "HAADF on another grid": (dict(haadf=_stack(3, shape=(7, 4, 16))), "same grid"),
    "EDS slices differ": (dict(eds={"Ag_La": _stack(1), "Au_Ma": _stack(2, shape=(7, 3, 8))}), "'Au_Ma'"),
    "NaN in EDS": (dict(eds={"Ag_La": _with(_stack(1), (2, 0, 3), np.nan)}), "NaN or infinite"),
    "inf in HAADF": (dict(haadf=_with(_stack(3), (4, 1, 1), np.inf)), "tilt index(es) [4]"),
    "negative EDS counts": (dict(eds={"Ag_La": _with(_stack(1), (0, 0, 0), -5.0)}), "negative count"),
    "pixel_nm zero": (dict(pixel_nm=0.0), "pixel_nm must be a positive"),
    "pixel_nm negative": (dict(pixel_nm=-1.5), "-1.5"),
    "pixel_nm NaN": (dict(pixel_nm=float("nan")), "pixel_nm"),
    "pixel_nm inf": (dict(pixel_nm=float("inf")), "pixel_nm"),
    "pixel_nm a string": (dict(pixel_nm="1 nm"), "pixel_nm"),
    "no channel": (dict(eds={}, haadf=None), "needs HAADF images or at least one EDS line"),
    "3-D image stack of wrong rank": (dict(eds={"Ag_La": np.ones((7, 2, 8, 2))}), "n_tilts, n_slices"),
}


@pytest.mark.parametrize("kw, needle", SERIES_CASES.values(), ids=SERIES_CASES.keys())
def test_bad_series_refused(kw, needle):
    with pytest.raises(ValueError) as info:
        _series(**kw)
    assert needle in str(info.value), str(info.value)


def test_unsorted_angles_are_sorted_with_their_images(caplog):
    order = np.array([3, 0, 6, 1, 5, 2, 4])  # dose-symmetric-like acquisition order
    eds = _stack(1)
    with caplog.at_level(logging.INFO, logger="chemtomo.tiltseries"):
        s = _series(angles_deg=ANGLES[order], eds={"Ag_La": eds[order]}, haadf=None)
    np.testing.assert_array_equal(s.angles_deg, ANGLES)
    np.testing.assert_array_equal(s.eds["Ag_La"], eds)
    assert "sorted by angle" in caplog.text


def test_rounding_negatives_are_clipped_deeper_ones_refused():
    eds = _with(_stack(1), (0, 0, 0), -1e-7)
    s = _series(eds={"Ag_La": eds})
    assert s.eds["Ag_La"].min() == 0 and eds.min() < 0  # the caller's array is left alone


# --------------------------------------------------------------------------- angle units asserted

ANGLE_UNIT_CASES = {
    "radians not asserted": (np.radians(ANGLES), None, "--angles-unit rad"),
    "degrees asserted as radians": (ANGLES, "rad", "beyond pi/2"),
    "unknown unit": (ANGLES, "grad", "angle unit must be one of"),
    "radians asserted, NaN": (_with(np.radians(ANGLES), 2, np.nan), "rad", "finite"),
    "radians asserted, repeat": (np.radians([-60, -30, 0, 0, 30, 60, 45]), "rad", "repeat"),
}


@pytest.mark.parametrize("angles, unit, needle", ANGLE_UNIT_CASES.values(), ids=ANGLE_UNIT_CASES.keys())
def test_bad_angle_unit_refused(angles, unit, needle):
    with pytest.raises(ValueError) as info:
        TiltSeries.from_angles(angles, unit, 1.0, {"Ag_La": _stack(1)})
    assert needle in str(info.value), str(info.value)


def test_radians_asserted_through_every_reader(tmp_path):
    """TiltSeries.from_angles, read_tilt_series (file angles, given angles, a radian axis) and resolve_angles."""
    from chemtomo.io.angles import resolve_angles
    from chemtomo.io.hspy import read_tilt_series, to_signal
    from chemtomo.preprocess.raw import LineMapOptions

    rad = np.radians(ANGLES)
    s = TiltSeries.from_angles(rad, "rad", 1.0, {"Ag_La": _stack(1)})
    np.testing.assert_allclose(s.angles_deg, ANGLES, atol=1e-12)
    assert s.metadata["angles_unit"] == "deg"
    to_signal(_stack(1), rad, 1.5, "Ag_La").save(tmp_path / "rad.hspy")
    with pytest.raises(ValueError, match="look like radians.*--angles-unit rad"):
        read_tilt_series({"Ag_La": tmp_path / "rad.hspy"})
    for given in (None, rad):
        got = read_tilt_series({"Ag_La": tmp_path / "rad.hspy"}, angles_deg=given, angles_unit="rad")
        np.testing.assert_allclose(got.angles_deg, ANGLES, atol=1e-12)
    axis = to_signal(_stack(1), ANGLES, 1.5, "Ag_La")
    del axis.metadata.Tomography.tilts  # the angles only in the navigation axis, in radians
    axis.axes_manager[0].units, axis.axes_manager[0].scale, axis.axes_manager[0].offset = "rad", np.radians(20), \
        np.radians(-60)
    axis.save(tmp_path / "radaxis.hspy")
    with pytest.raises(ValueError, match="is in radians.*--angles-unit rad"):
        read_tilt_series({"Ag_La": tmp_path / "radaxis.hspy"})
    got = read_tilt_series({"Ag_La": tmp_path / "radaxis.hspy"}, angles_unit="rad")
    np.testing.assert_allclose(got.angles_deg, ANGLES, atol=1e-9)
    names = [tmp_path / f"t{i}.bcf" for i in range(ANGLES.size)]
    with pytest.raises(ValueError, match=r"\(user\) .*look like radians.*--angles-unit rad"):
        resolve_angles(names, [None] * ANGLES.size, rad)
    got, _ = resolve_angles(names, [None] * ANGLES.size, rad, "auto", "rad")
    np.testing.assert_allclose(got, ANGLES, atol=1e-12)
    with pytest.raises(ValueError, match="angles_unit must be one of"):
        LineMapOptions(angles_unit="degrees")


def test_degrees_asserted_keep_a_narrow_series(tmp_path):
    """A series within +-1.5 degrees looks like radians: refused, unless degrees are asserted (then kept as is)."""
    from chemtomo.io.hspy import read_tilt_series, to_signal

    narrow = np.linspace(-1.5, 1.5, 7)
    with pytest.raises(ValueError, match="look like radians"):
        _series(angles_deg=narrow)
    np.testing.assert_array_equal(TiltSeries.from_angles(narrow, "deg", 1.0, {"Ag_La": _stack(1)}).angles_deg,
                                  narrow)
    to_signal(_stack(1), narrow, 1.5, "Ag_La").save(tmp_path / "narrow.hspy")
    got = read_tilt_series({"Ag_La": tmp_path / "narrow.hspy"}, angles_unit="deg")
    np.testing.assert_array_equal(got.angles_deg, narrow)


def test_min_tilts_is_one_constant():
    from chemtomo.io import metadata

    assert metadata.MIN_TILTS is MIN_TILTS and metadata.check_angles_deg.__module__ == "chemtomo.geometry"


# --------------------------------------------------------------------------- degenerate channels

DEGENERATE_CASES = {
    "one tilt": (dict(angles_deg=[0.0], eds={"Ag_La": _stack(shape=(1, 2, 8))}, haadf=None), False,
                 f"at least {MIN_TILTS} tilts"),
    "two tilts": (dict(angles_deg=[-30.0, 30.0], eds={"Ag_La": _stack(shape=(2, 2, 8))}, haadf=None), False,
                  "2 tilts, not a tilt series"),
    "all-zero EDS line": (dict(eds={"Ag_La": _stack(1), "Au_Ma": np.zeros(SHAPE)}), False, "'Au_Ma' has no counts"),
    "constant EDS line": (dict(eds={"Ag_La": np.full(SHAPE, 4.0)}), False, "'Ag_La' is constant"),
    "all-zero HAADF": (dict(haadf=np.zeros(SHAPE)), True, "HAADF is all zero"),
    "constant HAADF": (dict(haadf=np.full(SHAPE, 7.0)), True, "HAADF is constant"),
    "HAADF dark level over-subtracted": (dict(haadf=_stack(3, scale=100.0) - 120.0), True,
                                         "sums to zero or less"),
    "inverted HAADF": (dict(haadf=-_stack(3)), True, "sums to zero or less"),
    "one empty HAADF tilt": (dict(haadf=_with(_stack(3), 5, 0.0)), True, "tilt(s) [5] (angles [40.0] degrees)"),
}


@pytest.mark.parametrize("kw, needs_haadf, needle", DEGENERATE_CASES.values(), ids=DEGENERATE_CASES.keys())
def test_degenerate_channel_named(kw, needs_haadf, needle):
    s = _series(**kw)
    with pytest.raises(ValueError) as info:
        s.check_for_reconstruction(needs_haadf=needs_haadf)
    assert needle in str(info.value), str(info.value)


def test_haadf_noise_below_zero_is_accepted():
    noisy = _stack(3, scale=100.0) + np.random.default_rng(0).normal(0, 150, SHAPE).astype(np.float32)
    assert noisy.min() < 0
    _series(haadf=noisy).check_for_reconstruction(needs_haadf=True)


def test_eds_only_method_ignores_a_bad_haadf():
    _series(haadf=np.zeros(SHAPE)).check_for_reconstruction(needs_haadf=False)


def test_reconstruct_series_refuses_two_tilts():
    from chemtomo.pipeline.volume import reconstruct_series

    s = _series(angles_deg=[-30.0, 30.0], eds={"Ag_La": _stack(shape=(2, 2, 8))}, haadf=None)
    with pytest.raises(ValueError, match="needs at least 3 tilts"):
        reconstruct_series(s, paper_table2(["Ag_La"]), "eds_sirt", n_iter=1)


@pytest.mark.parametrize("method", ["eds_sirt", "hebt_sirt"])
def test_reconstruct_series_refuses_an_empty_line_before_solving(method):
    from chemtomo.pipeline.volume import reconstruct_series

    s = _series(eds={"Ag_La": _stack(1), "Au_Ma": np.zeros(SHAPE)})
    with pytest.raises(ValueError, match="'Au_Ma' has no counts"):
        reconstruct_series(s, paper_table2(["Ag_La", "Au_Ma"]), method, n_iter=1)


def test_reconstruct_series_refuses_a_nan_threshold_before_solving():
    from chemtomo.pipeline.volume import reconstruct_series

    with pytest.raises(ValueError, match="threshold must be a finite number"):
        reconstruct_series(_series(), paper_table2(["Ag_La", "Au_Ma"]), "eds_sirt", n_iter=1,
                           threshold=float("nan"))


# --------------------------------------------------------------------------- response-ratio fit

def test_constant_haadf_fit_is_an_error():
    with pytest.raises(ValueError, match="undefined.*HAADF is constant"):
        estimate_response_ratios(np.full(50, 3.0), {"Ag_La": np.arange(50.0)})


def test_zero_haadf_fit_is_an_error():
    with pytest.raises(ValueError, match="HAADF is all zero"):
        estimate_response_ratios(np.zeros(50), {"Ag_La": np.arange(50.0)})


def test_poor_fit_warns_with_r2_and_causes(caplog):
    rng = np.random.default_rng(0)
    with caplog.at_level(logging.WARNING, logger="chemtomo.reconstruct"):
        rr = estimate_response_ratios(rng.random(400), {"Ag_La": rng.random(400)})
    assert rr.r2 < R2_FLOOR
    assert f"R^2 = {rr.r2:.3f}" in caplog.text and "misregistered" in caplog.text


def test_zero_ratio_line_warns(caplog):
    x = np.linspace(0, 1, 200)
    with caplog.at_level(logging.WARNING, logger="chemtomo.reconstruct"):
        rr = estimate_response_ratios(2 * x, {"Ag_La": x, "Au_Ma": 1 - x})
    assert abs(rr.r[1]) < 1e-12 and "r_A = 0 for ['Au_Ma']" in caplog.text


def test_good_fit_is_silent(caplog):
    x = np.linspace(0, 1, 200)
    with caplog.at_level(logging.WARNING, logger="chemtomo.reconstruct"):
        rr = estimate_response_ratios(2 * x + 3 * x**2, {"Ag_La": x, "Au_Ma": x**2})
    assert rr.r2 > 0.999 and caplog.text == ""


# --------------------------------------------------------------------------- thresholds

TOTAL = np.linspace(0.0, 1.0, 1000).reshape(10, 10, 10)
THRESHOLD_CASES = {
    "nan": (float("nan"), "finite number"),
    "inf": (float("inf"), "finite number"),
    "-inf": (-float("inf"), "finite number"),
    "a string": ("0.5", "finite number"),
    "empty mask": (1e9, "empty mask (volume fraction 0)"),
    "at the maximum": (1.0, "empty mask"),
    "whole grid": (-1.0, "whole grid (volume fraction 1)"),
}


@pytest.mark.parametrize("value, needle", THRESHOLD_CASES.values(), ids=THRESHOLD_CASES.keys())
def test_bad_threshold_refused(value, needle):
    with pytest.raises(ValueError) as info:
        particle_mask(TOTAL, threshold=value)
    assert needle in str(info.value), str(info.value)


def test_threshold_on_a_constant_signal_says_nothing_separates():
    with pytest.raises(ValueError, match="no threshold separates"):
        particle_mask(np.ones((4, 4)), threshold=1.0)


def test_quantify_with_an_empty_mask_threshold_refused():
    maps = np.stack([TOTAL, TOTAL])
    with pytest.raises(ValueError, match="allowed: a value in"):
        quantify(maps, [1.0, 1.0], [1.0, 1.0], ["A_Ka", "B_Ka"], ["A", "B"], threshold=5.0)


def test_a_threshold_inside_the_range_is_kept():
    mask, th = particle_mask(TOTAL, threshold=0.5)
    assert th.method == "given" and 0 < th.volume_fraction < 1 and check_threshold(0.5) == 0.5


def test_options_refuse_a_nan_threshold():
    from chemtomo.pipeline.options import ReconstructionOptions

    with pytest.raises(ValueError, match="threshold must be a finite number"):
        ReconstructionOptions(threshold=float("nan"))


# --------------------------------------------------------------------------- factor tables

def _row(**kw):
    row = {"element": "Ag", "atomic_weight": 107.87, "sigma_elastic_barn": 1.2e7, "sigma_ionization_barn": 2444.0,
           "fluorescence_yield": 0.05, "relative_intensity": 0.8, "detector_efficiency": 0.96}
    row.update(kw)
    return row


FACTOR_CASES = {
    "detector efficiency 5": ({"Ag_La": _row(detector_efficiency=5)}, "detector_efficiency is a fraction"),
    "detector efficiency 0": ({"Ag_La": _row(detector_efficiency=0)}, "must be positive"),
    "fluorescence yield 1.5": ({"Ag_La": _row(fluorescence_yield=1.5)}, "fluorescence_yield is a fraction"),
    "relative intensity 2": ({"Ag_La": _row(relative_intensity=2)}, "relative_intensity is a fraction"),
    "negative cross-section": ({"Ag_La": _row(sigma_ionization_barn=-3)}, "must be positive"),
    "NaN atomic weight": ({"Ag_La": _row(atomic_weight="NaN")}, "must be positive"),
    "infinite cross-section": ({"Ag_La": _row(sigma_elastic_barn="Infinity")}, "positive, finite"),
    "non-numeric value": ({"Ag_La": _row(atomic_weight="heavy")}, "non-numeric"),
    "missing column": ({"Ag_La": {"element": "Ag"}}, "lacks"),
    "a list, not an object": ([1, 2], "object keyed by line"),
    "a row that is a number": ({"Ag_La": 3}, "not an object"),
    "empty table": ({}, "holds no line"),
}


@pytest.mark.parametrize("table, needle", FACTOR_CASES.values(), ids=FACTOR_CASES.keys())
def test_bad_factor_table_refused_naming_the_file(tmp_path, table, needle):
    path = tmp_path / "my_factors.json"
    path.write_text(json.dumps(table))
    with pytest.raises(ValueError) as info:
        read_factor_table(path)
    assert str(path) in str(info.value) and needle in str(info.value), str(info.value)


def test_malformed_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"Ag_La": {"element": "Ag",')
    with pytest.raises(ValueError, match="broken.json: not a readable JSON factor table"):
        read_factor_table(path)


def test_csv_without_a_line_column_names_the_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("element,atomic_weight\nAg,107.87\n")
    with pytest.raises(ValueError, match="t.csv: a CSV factor table needs a 'line' column"):
        read_factor_table(path)


def test_missing_line_names_the_file(tmp_path):
    path = tmp_path / "only_ag.json"
    path.write_text(json.dumps({"Ag_La": _row()}))
    with pytest.raises(KeyError, match="only_ag.json has no line"):
        resolve_factors(str(path), ["Ag_La", "Au_Ma"], 200.0)
    assert resolve_factors(str(path), ["Ag_La"], 200.0).lines == ["Ag_La"]


# --------------------------------------------------------------------------- beam energy

@pytest.mark.parametrize("beam_kev, needle", [
    (1e6, "beyond the elastic model's validity"),
    (1e4, "beyond the elastic model's validity"),
    (2e6, "beam_kev must be in"),
    (float("nan"), "beam_kev must be in"),
    (-200.0, "beam_kev must be in"),
    (0.5, "not excited"),
])
def test_beam_energy_beyond_the_models_refused(beam_kev, needle):
    with pytest.raises(ValueError) as info:
        compute_factors(["Co_Ka"], beam_kev=beam_kev)
    assert needle in str(info.value), str(info.value)


@pytest.mark.parametrize("beam_kev", [80.0, 200.0, 300.0])
def test_no_warning_where_the_models_are_valid(caplog, beam_kev):
    with caplog.at_level(logging.WARNING, logger="chemtomo.physics"):
        compute_factors(["Co_Ka"], beam_kev=beam_kev)
    assert caplog.text == ""


def test_browning_extrapolated_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="chemtomo.physics"):
        fac = compute_factors(["Au_Ma"], beam_kev=300.0, elastic="browning1991")
    assert "extrapolated beyond the fit's 1-100 keV" in caplog.text
    assert "extrapolated" in fac["Au_Ma"].sources["sigma_elastic"]


def test_store_route_refuses_an_empty_mask_threshold(tmp_path):
    from chemtomo.pipeline.volume import reconstruct_series

    with pytest.raises(ValueError, match="empty mask"):
        reconstruct_series(_series(), paper_table2(["Ag_La", "Au_Ma"]), "eds_sirt", n_iter=1,
                           store=tmp_path / "v.zarr", threshold=1e9)
