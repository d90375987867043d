"""Property tests of the edge checks (issue 12): random angles, units and shapes never give a silent wrong answer.

Each property draws inputs, good and bad alike, and asserts that the code either
returns the right value (checked against an independent computation: degrees
from ``math.degrees``, nm from a table of unit factors, shapes from the drawn
sizes) or raises a ValueError whose message names the problem. A wrong value
returned, or any other exception, fails. Examples are few (``max_examples``)
so the module runs in seconds; ``deadline=None`` because the first example
pays for imports.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from chemtomo.geometry import angles_to_deg, looks_like_radians
from chemtomo.io.angles import resolve_angles
from chemtomo.tiltseries import TiltSeries

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: distinct tilt angles in degrees, as a microscope writes them (0.01 degree steps)
degree_sets = st.lists(st.integers(-8900, 8900), min_size=3, max_size=40, unique=True).map(
    lambda v: np.array(v, dtype=float) / 100)

#: any floats at all, as a damaged or foreign file may hold
any_floats = st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=0, max_size=12)

ANGLE_PROBLEMS = ("no tilt angles", "finite and within [-90, 90]", "look like radians", "repeat",
                  "asserted to be radians", "angle unit must be one of")


def _ok_degrees(a: np.ndarray) -> bool:
    return (a.size > 0 and bool(np.all(np.isfinite(a))) and bool(np.all(np.abs(a) <= 90))
            and np.unique(np.round(a, 6)).size == a.size)


@SETTINGS
@given(degree_sets)
def test_radians_asserted_equal_the_degrees(deg):
    rad = np.array([math.radians(x) for x in deg])
    got = angles_to_deg(rad, "rad", "test")
    np.testing.assert_allclose(got, deg, rtol=0, atol=1e-9)
    a = TiltSeries(deg, 1.0, {"Ag_La": np.ones((deg.size, 1, 4))}, metadata={"angles_unit": "deg"})
    b = TiltSeries.from_angles(rad, "rad", 1.0, {"Ag_La": np.ones((deg.size, 1, 4))})
    np.testing.assert_allclose(b.angles_deg, a.angles_deg, rtol=0, atol=1e-9)
    assert np.all(np.diff(b.angles_deg) > 0)  # sorted as the degree series


@SETTINGS
@given(degree_sets)
def test_degrees_are_taken_unless_they_look_like_radians(deg):
    eds = {"Ag_La": np.ones((deg.size, 1, 4))}
    if looks_like_radians(deg):
        with pytest.raises(ValueError, match="look like radians"):
            TiltSeries(deg, 1.0, eds)
        np.testing.assert_array_equal(TiltSeries.from_angles(deg, "deg", 1.0, eds).angles_deg, np.sort(deg))
    else:
        np.testing.assert_array_equal(TiltSeries(deg, 1.0, eds).angles_deg, np.sort(deg))
    if np.abs(deg).max() > math.pi / 2:  # degrees wrongly asserted as radians: refused, never converted
        with pytest.raises(ValueError, match="asserted to be radians"):
            TiltSeries.from_angles(deg, "rad", 1.0, eds)


@SETTINGS
@given(any_floats, st.sampled_from([None, "deg", "rad", "grad", "degrees"]))
def test_any_angles_give_checked_degrees_or_a_named_error(values, unit):
    a = np.array(values, dtype=float)
    try:
        got = angles_to_deg(a, unit, "test")
    except ValueError as exc:
        assert any(p in str(exc) for p in ANGLE_PROBLEMS), str(exc)
        return
    assert unit in (None, "deg", "rad")
    expected = np.degrees(a) if unit == "rad" else a
    np.testing.assert_array_equal(got, expected)
    assert _ok_degrees(got)
    if unit is None:
        assert not looks_like_radians(got)


@SETTINGS
@given(degree_sets, st.sampled_from(["user", "filename"]), st.sampled_from([None, "rad"]))
def test_raw_route_angles_in_either_unit(deg, source, unit):
    """resolve_angles (the raw route) takes the angles from the user or the file names, in the unit asserted."""
    from pathlib import Path

    given_values = np.radians(deg) if unit == "rad" else deg
    if source == "user":
        paths = [Path(f"scan_{i}.bcf") for i in range(deg.size)]
        got, src = resolve_angles(paths, [None] * deg.size, given_values, "auto", unit)
    else:
        paths = [Path(f"tilt_{v:.15f}.bcf") for v in given_values]
        got, src = resolve_angles(paths, [None] * deg.size, None, "auto", unit)
    assert src == source
    np.testing.assert_allclose(got, deg, rtol=0, atol=1e-9)


@SETTINGS
@given(degree_sets)
def test_raw_route_refuses_radians_not_asserted(deg):
    from pathlib import Path

    rad = np.radians(deg)
    assume(looks_like_radians(rad))
    paths = [Path(f"scan_{i}.bcf") for i in range(deg.size)]
    with pytest.raises(ValueError, match="look like radians.*--angles-unit rad"):
        resolve_angles(paths, [None] * deg.size, rad, "auto")


# --------------------------------------------------------------------------- pixel units

#: nm per unit, written independently of the code under test
NM_PER = {"nm": 1.0, "um": 1e3, "µm": 1e3, "micron": 1e3, "Å": 0.1, "A": 0.1, "angstrom": 0.1, "pm": 1e-3,
          "mm": 1e6, "m": 1e9}
NOT_LENGTH = ["", "px", "pixels", "a.u.", "s", "eV", "1/nm", "deg"]


@SETTINGS
@given(st.one_of(st.floats(min_value=-1e6, max_value=1e6), st.sampled_from([0.0, float("nan"), float("inf")])),
       st.sampled_from(list(NM_PER) + NOT_LENGTH + [None]))
def test_pixel_size_converted_or_refused(scale, unit):
    from chemtomo.io.metadata import length_nm

    expected = scale * NM_PER[unit] if unit in NM_PER else None
    try:
        got = length_nm(scale, unit, "test.hspy")
    except ValueError as exc:
        msg = str(exc)
        assert "test.hspy" in msg and "--pixel-nm" in msg, msg
        assert expected is None or not (math.isfinite(expected) and expected > 0), (scale, unit, msg)
        return
    assert expected is not None, f"a pixel size in {unit!r} was taken as a length"
    assert got == pytest.approx(expected, rel=1e-9) and got > 0


# --------------------------------------------------------------------------- shapes

@SETTINGS
@given(st.integers(1, 9), st.lists(st.tuples(st.integers(1, 9), st.integers(1, 4), st.integers(1, 9)),
                                   min_size=1, max_size=3))
def test_series_shapes_consistent_or_named(n_angles, shapes):
    """Stacks of random shapes: the series holds exactly the drawn arrays, or the error names the mismatch."""
    angles = np.linspace(-60, 60, n_angles) if n_angles > 1 else np.array([0.0])
    eds = {f"L{i}_Ka": np.ones(s) for i, s in enumerate(shapes)}
    consistent = all(s[0] == n_angles for s in shapes) and len({s[1:] for s in shapes}) == 1
    try:
        ts = TiltSeries(angles, 1.0, eds)
    except ValueError as exc:
        msg = str(exc)
        assert not consistent or "n_pixels" in msg, msg
        assert any(p in msg for p in ("tilt angles: give one angle per image", "every channel must be on one grid",
                                      "n_pixels must be >= 2")), msg
        return
    assert consistent
    assert ts.shape == shapes[0] and ts.angles_deg.size == n_angles
