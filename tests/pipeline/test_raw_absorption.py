"""The absorption correction on the raw route (issue 14): options, detectors from the files, the NCEM subset.

The real-data tests run on five of the NCEM .bcf files (-40, -20, 0, 20, 35 deg), binned 8x8,
line maps by windows, EDS-SIRT with 20 iterations: a pass over the path, not a result.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from chemtomo.io.detector_meta import DetectorFacts
from chemtomo.physics.absorption import DetectorGeometry
from chemtomo.pipeline.options import ReconstructionOptions
from chemtomo.pipeline.raw_absorption import (
    RAW_DENSITY_G_CM3,
    check_absorption_options,
    correction_kwargs,
    density_note,
)

NCEM = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ncem-idp-eds-tilt-series"
LINES = ["O_Ka", "Mg_Ka", "Si_Ka", "Fe_Ka", "Pt_La"]
SUBSET = ["-40.bcf", "-20.bcf", "0.bcf", "20.bcf", "35.bcf"]
#: what the NCEM .bcf files state (tests/io/test_detector_meta.py reads it from the file)
NCEM_FACTS = DetectorFacts((18.0,), (45.0,), None, None, "SuperX",
                           {"elevation_deg": "original_metadata.Analysis.ElevationAngle"}).as_dict()


# ----------------------------------------------------------------------------- options (fast)

@pytest.mark.parametrize("bad, match", [
    ({"detectors": "quad"}, "detectors must be one of"),
    ({"density_g_cm3": -1.0}, "finite number >= 0"),
    ({"density_g_cm3": float("nan")}, "finite number >= 0"),
    ({"density_g_cm3": np.ones((2, 2))}, "finite number >= 0"),
    ({"tol": 0.0}, "tol must be a positive"),
    ({"max_outer": 0}, "max_outer must be an integer >= 1"),
    ({"dose": 1.0}, "unknown absorption option"),
    ({"detectors": "super-x", "solid_angle_sr": 0.7}, "apply to detectors='file' only"),
])
def test_bad_absorption_options_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        check_absorption_options(bad)
    with pytest.raises(ValueError, match=match):
        ReconstructionOptions(absorption=bad)


def test_absorption_refuses_replicas():
    with pytest.raises(ValueError, match="absorption does not combine with replicas"):
        ReconstructionOptions(absorption={"detectors": "single"}, replicas=3)


def test_default_density_is_the_stated_assumption():
    kw = correction_kwargs({"detectors": "single"})
    assert kw == {"detectors": "single", "density_g_cm3": RAW_DENSITY_G_CM3}
    assert "assumed 3 g/cm^3" in density_note({"detectors": "single"})
    assert correction_kwargs({"density_g_cm3": 0, "tol": 0.01, "max_outer": 2}) == {
        "detectors": "super-x", "density_g_cm3": 0.0, "tol": 0.01, "max_outer": 2}
    assert density_note({"density_g_cm3": 2.5}).startswith("given: 2.5 g/cm^3")


def test_file_detectors_need_what_the_bcf_lacks():
    """The NCEM files state a Super-X with one azimuth, no count and no solid angle: both must be given."""
    with pytest.raises(ValueError, match="--eds-azimuth-deg"):
        correction_kwargs({"detectors": "file"}, NCEM_FACTS)
    with pytest.raises(ValueError, match="--solid-angle-sr"):
        correction_kwargs({"detectors": "file", "azimuth_deg": [45, 135, 225, 315]}, NCEM_FACTS)
    kw = correction_kwargs({"detectors": "file", "azimuth_deg": [45, 135, 225, 315], "solid_angle_sr": 0.7},
                           NCEM_FACTS)
    det, preset = kw["detectors"], DetectorGeometry.preset("super-x")
    assert isinstance(det, DetectorGeometry)
    assert det.elevation_deg == (18.0,) * 4  # the file's take-off angle
    assert sorted(a % 360 for a in det.azimuth_deg) == sorted(preset.azimuth_deg)  # 90 - (45, ..., 315) mod 360
    assert math.isclose(sum(det.solid_angle_sr), 0.7)


def _args(argv):
    from chemtomo.cli import build_parser

    return build_parser().parse_args(argv)


@pytest.mark.parametrize("extra, match", [
    (["--density", "3"], "apply to the absorption correction"),
    (["--absorption", "super-x", "--eds-elevation-deg", "18"], "not for the nominal"),
    (["--absorption", "super-x", "--replicas", "3"], "does not combine with --replicas"),
    (["--absorption", "super-x", "--store", "s.zarr"], "does not combine with --store"),
    (["--absorption", "single", "--density", "-2"], "--density must be a finite number >= 0"),
    (["--absorption", "single", "--absorption-max-outer", "0"], "--absorption-max-outer must be"),
])
def test_raw_route_refuses_absorption_options_that_do_not_apply(tmp_path, extra, match):
    from chemtomo.cli._raw import raw_options

    folder = tmp_path / "tilts"
    folder.mkdir()
    args = _args(["reconstruct", str(folder), "--lines", "Fe_Ka", "--out", str(tmp_path / "out"), *extra])
    with pytest.raises(ValueError, match=match):
        raw_options(args)


def test_stack_only_options_still_refused_on_the_raw_route(tmp_path):
    from chemtomo.cli.reconstruct import run

    args = _args(["reconstruct", str(tmp_path), "--lines", "Fe_Ka", "--absorption", "single", "--tilt-axis", "x",
                  "--out", str(tmp_path / "out")])
    with pytest.raises(ValueError, match="--tilt-axis"):
        run(args)


# ----------------------------------------------------------------------------- the NCEM subset

def _need_ncem():
    if not NCEM.is_dir():
        pytest.skip(f"shared dataset not found at {NCEM.resolve()} (../shared/data absent)")


@pytest.fixture(scope="module")
def ncem_pre():
    """Five NCEM tilts: line maps (windows), preprocessed at bin 8, the factors."""
    _need_ncem()
    from chemtomo.io.factors import resolve_factors
    from chemtomo.preprocess.raw import load_line_maps
    from chemtomo.preprocess.series import preprocess_tilt_series

    lm = load_line_maps([NCEM / f for f in SUBSET], LINES, progress=False)
    pre = preprocess_tilt_series(lm.eds, lm.haadf, lm.angles_deg, lm.pixel_nm, bin_factor=8,
                                 metadata={"beam_kev": lm.beam_kev}, progress=False)
    return lm, pre, resolve_factors("physics", LINES, lm.beam_kev)


def _run(pre, fac, absorption=None, absorbed=None):
    from chemtomo.pipeline.experimental import reconstruct_experimental

    ro = ReconstructionOptions(methods=["eds_sirt"], n_iter=20, mask_method="otsu", absorption=absorption)
    return reconstruct_experimental(pre.series, fac, ro, filter_sigma=None, crop_px=pre.pad_px, progress=False,
                                    unfiltered=pre.unfiltered, absorbed=absorbed)


@pytest.mark.shared_data
@pytest.mark.slow
def test_ncem_detector_facts_recorded_by_the_line_maps(ncem_pre):
    lm, _, _ = ncem_pre
    assert lm.eds_detector["elevation_deg"] == [18.0] and lm.eds_detector["azimuth_deg"] == [45.0]
    assert lm.eds_detector["solid_angle_sr"] is None and lm.eds_detector["detector_type"] == "SuperX"


@pytest.mark.shared_data
@pytest.mark.slow
def test_ncem_zero_density_reproduces_the_uncorrected_route(ncem_pre):
    """Density 0: no attenuation; the uncorrected start is the plain route bit for bit, the corrected one equal."""
    _, pre, fac = ncem_pre
    plain = _run(pre, fac)["eds_sirt"]
    absorbed = {}
    corrected = _run(pre, fac, {"detectors": "super-x", "density_g_cm3": 0.0}, absorbed)["eds_sirt"]
    a = absorbed["eds_sirt"]
    np.testing.assert_array_equal(a.uncorrected.maps, plain.maps)
    np.testing.assert_array_equal(a.uncorrected.composition.weight, plain.composition.weight)
    np.testing.assert_array_equal(a.uncorrected.composition.mask, plain.composition.mask)
    # T = 1 exactly; the ratio (W x)/(A x) is 1 to float32 rounding of the two products
    for t in a.record["transmission"].values():
        np.testing.assert_array_equal(t, 1.0)
    np.testing.assert_allclose(corrected.maps, plain.maps, rtol=1e-5, atol=1e-6 * float(np.abs(plain.maps).max()))
    np.testing.assert_array_equal(corrected.composition.mask, plain.composition.mask)
    np.testing.assert_allclose(corrected.composition.weight, plain.composition.weight, atol=1e-5)
    assert a.outer_iterations == 1 and a.record["converged"]


@pytest.mark.shared_data
@pytest.mark.slow
def test_ncem_correction_holds_both_fractions_and_raises_oxygen(ncem_pre, tmp_path):
    """The assumed density: O Ka loses more counts than Si Ka, so O's fraction rises; the file holds both."""
    from chemtomo.io.experimental_result import read_experimental
    from chemtomo.pipeline.experimental import ExperimentalResult, write_outputs

    _, pre, fac = ncem_pre
    absorbed = {}
    results = _run(pre, fac, {"detectors": "super-x", "max_outer": 3}, absorbed)
    a = absorbed["eds_sirt"]
    assert 1 <= a.outer_iterations <= 3 and len(a.record["changes"]) == a.outer_iterations
    assert a.corrected is results["eds_sirt"]
    inside = a.uncorrected.composition.mask
    loss = {ln: 1 - float(np.asarray(t)[inside].mean()) for ln, t in a.record["transmission"].items()}
    assert loss["O_Ka"] > loss["Si_Ka"] > loss["Fe_Ka"] >= 0  # xraylib: absorption falls with the line energy
    means = a.particle_means()
    assert means["O"][1] > means["O"][0]
    assert a.record["transmission"]["O_Ka"].shape == a.corrected.maps.shape[1:]  # cropped to the field
    assert a.record["density_g_cm3"].max() == pytest.approx(RAW_DENSITY_G_CM3, rel=1e-5)

    exp = ExperimentalResult(pre, results, "eds_sirt", fac, absorption=absorbed)
    paths = write_outputs(tmp_path / "out", exp, export=(), figures=True)
    with h5py.File(paths["result"]) as f:
        g = f["absorption"]
        assert int(g.attrs["outer_iterations"]) == a.outer_iterations
        assert "assumed 3 g/cm^3" in g.attrs["density_source"]
        for el in ("O", "Mg", "Si"):
            # stored as float32
            np.testing.assert_array_equal(g[f"uncorrected/weight/{el}"][()], np.float32(
                a.uncorrected.composition.weight[a.uncorrected.elements.index(el)]))
            np.testing.assert_array_equal(f[f"fractions/weight/{el}"][()], np.float32(
                a.corrected.composition.weight[a.corrected.elements.index(el)]))
    res = read_experimental(paths["result"])
    assert res["absorption"]["outer_iterations"] == a.outer_iterations
    names = {Path(p).name for p in paths["figures"]}
    assert {"fig_absorption_fractions.png", "absorption_fractions.md"} <= names
    table = (tmp_path / "out" / "figures" / "absorption_fractions.md").read_text()
    assert "| O | O_Ka |" in table and f"{means['O'][1]:.4f}" in table


@pytest.mark.shared_data
def test_ncem_file_detectors_refused_early_without_the_solid_angle(tmp_path, capsys):
    """--absorption file reads the first .bcf before the line maps: no solid angle, no flag: refused."""
    _need_ncem()
    from chemtomo.cli import main

    out = tmp_path / "out"
    code = main(["reconstruct", *[str(NCEM / f) for f in SUBSET[:2]], "--lines", "O_Ka", "--absorption", "file",
                 "--eds-azimuth-deg", "45", "135", "225", "315", "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "--solid-angle-sr" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.shared_data
@pytest.mark.slow
def test_ncem_cli_raw_route_with_absorption_file(tmp_path, capsys):
    """The command line end to end on the subset: the file's 18 deg, the result's /absorption, the summary."""
    _need_ncem()
    from chemtomo.cli import main

    out = tmp_path / "out"
    code = main(["reconstruct", *[str(NCEM / f) for f in SUBSET], "--lines", *LINES, "--bin", "8", "--method",
                 "eds_sirt", "-n", "20", "--mask", "otsu", "--absorption", "file", "--eds-azimuth-deg", "45", "135",
                 "225", "315", "--solid-angle-sr", "0.7", "--absorption-max-outer", "2", "--export", "none",
                 "--no-figures", "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "eds_sirt: absorption (from the tilt files; density assumed 3 g/cm^3" in err
    assert "uncorrected -> corrected: O " in err
    with h5py.File(out / "result.h5") as f:
        g = f["absorption"]
        assert 1 <= int(g.attrs["outer_iterations"]) <= 2
        det = json.loads(g.attrs["detectors"])
        assert det["elevation_deg"] == [18.0] * 4
        assert set(g["uncorrected/weight"]) == {"O", "Mg", "Si", "Fe", "Pt"}
