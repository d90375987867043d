"""The experimental path end to end on raw spectrum-image files written by the tests.

The synthetic check (docs/experimental.md): a Co-Zn core-shell particle (40^3 voxels of
2 nm, core 80 wt% Co, shell 20 wt% Co) is projected at 13 tilts (-60..60 deg), shifted
by known amounts (uniform in +-3 px per axis) and by a tilt-axis offset of 2.5 px, and
written as Poisson spectrum images (.hspy, HAADF companions). The pipeline must recover

- the shifts and the offset: max error 0.5 px per tilt (what is applied to each image
  against what undoes the known displacement);
- the composition: mean Co weight fraction in the core (eroded by 2 voxels) within
  0.12 of 0.80 and in the shell within 0.08 of 0.20, by both EDS-SIRT and HEBT;
- r_A with R^2 > 0.95.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.ndimage import binary_erosion

sys.path.insert(0, str(Path(__file__).parent))
from test_experimental_synthetic import LINES, make_series  # noqa: E402

from chemtomo.pipeline.experimental import read_experimental, run_experimental  # noqa: E402

SHIFT_TOL_PX = 0.5
CORE_TOL, SHELL_TOL = 0.12, 0.08


@pytest.fixture(scope="module", autouse=True)
def _quiet_import():
    from chemtomo.io.microscope import _hs

    _hs()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_series(tmp_path_factory.mktemp("raw"), axis_offset_px=2.5, seed=0)


@pytest.fixture(scope="module")
def run(synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "result"
    exp = run_experimental(synthetic.folder, LINES, out, bin_factor=1, n_iter=100, export=("tiff", "mrc"),
                           progress=False)
    return exp, out


def shift_errors(exp, syn) -> np.ndarray:
    """Per-tilt error of what was applied against what undoes the known displacement (pixels)."""
    applied = exp.pre.alignment.total_shifts_px
    undo = -(syn.shifts_px + np.array([0.0, syn.axis_offset_px]))
    return np.hypot(*(applied - undo).T)


def composition(exp, syn) -> dict:
    core, shell = binary_erosion(syn.core, iterations=2), binary_erosion(syn.shell, iterations=2)
    out = {}
    for m, res in exp.results.items():
        co = res.composition.weight[res.elements.index("Co")]
        out[m] = (float(co[core].mean()), float(co[shell].mean()))
    return out


def test_synthetic_shifts_and_offset_recovered(run, synthetic):
    exp, _ = run
    assert exp.pre.alignment.angles_deg.tolist() == synthetic.angles_deg.tolist()
    err = shift_errors(exp, synthetic)
    assert err.max() < SHIFT_TOL_PX, err
    assert exp.pre.alignment.axis_offset_px == pytest.approx(-synthetic.axis_offset_px, abs=0.3)
    assert exp.pre.pad_px == 0  # a particle in vacuum: no padding


def test_synthetic_composition_recovered(run, synthetic):
    exp, _ = run
    for m, (core, shell) in composition(exp, synthetic).items():
        assert core == pytest.approx(0.80, abs=CORE_TOL), (m, core)
        assert shell == pytest.approx(0.20, abs=SHELL_TOL), (m, shell)
    rr = exp.results["hebt_sirt"].response_ratios
    assert rr.r2 > 0.95 and np.all(rr.r > 0)
    # physics factors at the files' beam energy (80 keV), as the paper's Table 2 for Co and Zn
    assert exp.factors["Co_Ka"].beam_kev == 80.0
    assert exp.factors.f(LINES) == pytest.approx([2.25, 1.84], rel=0.02)


def test_outputs_layout(run):
    exp, out = run
    assert sorted(p.name for p in out.iterdir()) == ["export", "figures", "result.h5"]
    r = read_experimental(out / "result.h5")
    assert sorted(r["maps"]) == LINES and sorted(r["weight"]) == ["Co", "Zn"]
    assert r["parameters"]["method"] == "hebt_sirt" and r["r2"] > 0.95
    assert sorted(r["methods"]) == ["eds_sirt", "hebt_sirt"]
    assert r["alignment"]["shifts_px"].shape == (13, 2)
    assert r["alignment"]["haadf_registration_px"].shape == (13, 2)
    assert sorted(r["preprocess"]["shadowing_factors"]) == LINES
    assert r["tiltseries"]["haadf"].shape == (13, 40, 40)
    prov = r["provenance"]
    assert len(prov["inputs"]) == 26 and all(len(i["sha256"]) == 64 for i in prov["inputs"])
    assert prov["preprocess"]["alignment"]["method"] == "xcorr"
    with h5py.File(out / "result.h5") as f:
        assert f["maps/Co_Ka"].shape == (40, 40, 40)
        assert json.loads(f.attrs["methods"]) == ["eds_sirt", "hebt_sirt"]
    names = sorted(p.name for p in (out / "export").iterdir())
    assert "hebt_sirt_weight_Co.tif" in names and "hebt_sirt_maps_Zn_Ka.mrc" in names and len(names) == 8
    figs = sorted(p.name for p in (out / "figures").iterdir())
    assert figs == ["alignment.png", "fig14_tiltseries.png", "fig15_orthoslices_maps.png",
                    "fig16_orthoslices_weight.png", "fig17_render3d.png"]


def _h5_objects(path) -> dict:
    """Every dataset and group of a file: values (datasets), attributes, dtype, chunks and filters."""
    out = {}

    def visit(name, obj):
        attrs = {k: np.asarray(v).tolist() for k, v in obj.attrs.items()}
        if isinstance(obj, h5py.Dataset):
            out[name] = (obj[()], attrs, obj.dtype, obj.chunks, obj.compression, obj.compression_opts, obj.shuffle)
        else:
            out[name] = (None, attrs)

    with h5py.File(path) as f:
        f.visititems(visit)
    return out


def _png_bytes(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted(Path(folder).glob("*.png"))}


def test_figures_on_two_processes_are_the_same_files(run, tmp_path):
    """A helper process draws figures from the front of the list, this one from the back: same PNGs, byte for byte."""
    from chemtomo.report.volume import FIGURE_TASKS, draw_result_figures

    _, out = run
    one = draw_result_figures(out / "result.h5", tmp_path / "one", processes=1)
    two = draw_result_figures(out / "result.h5", tmp_path / "two", processes=2)
    assert [p.name for p in one] == [p.name for p in two]
    assert len(one) == 5 and one[0].name == "fig17_render3d.png"  # the order of FIGURE_TASKS, costliest first
    assert FIGURE_TASKS[0] == "render3d"
    a, b = _png_bytes(tmp_path / "one"), _png_bytes(tmp_path / "two")
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(a)  # no claim files left behind


def test_figures_left_by_a_failed_helper_are_drawn_here(run, tmp_path, monkeypatch, caplog):
    """A helper that claims a figure and dies: this process draws it, says so in the log, and the set is whole."""
    import chemtomo.report.volume as rv

    def dying_helper(result_path, folder, claims, slices):
        code = "import os, sys; open(os.path.join(sys.argv[1], 'render3d'), 'x').close(); sys.exit(3)"
        p = subprocess.Popen([sys.executable, "-c", code, str(claims)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        p.wait()  # it has claimed before this process looks
        return p

    _, out = run
    monkeypatch.setattr(rv, "_start_helper", dying_helper)
    with caplog.at_level("WARNING", logger="chemtomo.report"):
        figs = rv.draw_result_figures(out / "result.h5", tmp_path / "f", processes=2)
    assert [p.name for p in figs][0] == "fig17_render3d.png" and len(figs) == 5
    assert "figure helper process failed (exit 3)" in caplog.text
    ref = rv.draw_result_figures(out / "result.h5", tmp_path / "ref", processes=1)
    assert _png_bytes(tmp_path / "f") == _png_bytes(tmp_path / "ref") and len(ref) == 5


def test_figure_processes_choice(run):
    from chemtomo.pipeline.options import OutputOptions
    from chemtomo.report.volume import PARALLEL_FIGURES_MIN_VOXELS, figure_processes

    _, out = run
    assert figure_processes(out / "result.h5", 3) == 3
    assert figure_processes(out / "result.h5") == 1  # 40^3 voxels: below the size where a helper pays
    assert 40 ** 3 < PARALLEL_FIGURES_MIN_VOXELS
    with pytest.raises(ValueError, match="processes must be >= 1"):
        figure_processes(out / "result.h5", 0)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="figure_processes"):
            OutputOptions(figure_processes=bad)


def test_primary_volumes_copied_are_the_datasets_compressed_again(run, tmp_path):
    """methods/<primary> copies the top level's compressed chunks: the same datasets as compressing the arrays again.

    And reading the file back gives the primary's volumes equal to the top level's (read-only views of them).
    """
    from chemtomo.io.experimental_result import _same_storage, write_experimental_groups
    from chemtomo.io.result import write_result

    exp, _ = run
    files = {}
    for copied in (False, True):
        path = tmp_path / f"copied_{copied}.h5"
        write_result(path, exp.primary_result, {"x": 1})
        write_experimental_groups(path, exp.results, exp.primary, exp.pre, primary_at_top=copied)
        files[copied] = _h5_objects(path)
    assert files[True].keys() == files[False].keys()
    assert any(k.startswith(f"methods/{exp.primary}/maps/") for k in files[True])
    for name, ref in files[False].items():
        got = files[True][name]
        assert got[1:] == ref[1:], name
        if ref[0] is not None:
            np.testing.assert_array_equal(got[0], ref[0])
    path = tmp_path / "copied_True.h5"
    with h5py.File(path) as f:
        assert _same_storage(f, f"methods/{exp.primary}/maps/Co_Ka", "maps/Co_Ka")
        assert not _same_storage(f, "methods/eds_sirt/maps/Co_Ka", "maps/Co_Ka")  # another method's map
    r = read_experimental(path)
    for kind in ("maps", "weight", "atomic"):
        for k, top in r[kind].items():
            mine = r["methods"][exp.primary][kind][k]
            np.testing.assert_array_equal(mine, top)
            assert not mine.flags.writeable
    other = r["methods"]["eds_sirt"]["maps"]["Co_Ka"]
    eds = exp.results["eds_sirt"]
    np.testing.assert_array_equal(other, eds.maps[eds.lines.index("Co_Ka")].astype(np.float32))


def test_hyperspy_signals_in_at_the_preprocessing_step(run, synthetic):
    """A HyperSpy user enters with line-map signals (tilt | y, x) and gets the same series."""
    from chemtomo.pipeline.experimental import load_line_maps, preprocess_tilt_series

    exp, _ = run
    lm = load_line_maps(synthetic.folder, LINES, progress=False)
    sig = lm.to_signals()
    pre = preprocess_tilt_series({ln: sig[ln] for ln in LINES}, sig["HAADF"], bin_factor=1, progress=False)
    np.testing.assert_allclose(pre.alignment.total_shifts_px, exp.pre.alignment.total_shifts_px, atol=1e-6)
    assert pre.to_signals()["Co_Ka"].axes_manager.navigation_axes[0].size == 13


# ----------------------------------------------------------------------------- CLI

def chemtomo(*args, check=True):
    return subprocess.run([sys.executable, "-m", "chemtomo", *map(str, args)], capture_output=True, text=True,
                          check=check)


def test_cli_raw_series_with_a_user_factor_table_and_show(synthetic, tmp_path):
    from chemtomo.physics import paper_table2

    table = tmp_path / "table.json"
    table.write_text(json.dumps(paper_table2(LINES).as_dict()))
    out = tmp_path / "cli"
    proc = chemtomo("reconstruct", synthetic.folder, "--lines", *LINES, "--factors", table, "--bin", "1",
                    "-n", "40", "--method", "eds_sirt", "hebt_sirt", "--export", "none", "--no-figures",
                    "--out", out, "--quiet", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "r_A Co_Ka" in proc.stderr and "R^2" in proc.stderr and "Traceback" not in proc.stderr
    r = read_experimental(out / "result.h5")
    assert r["provenance"]["factors"]["Co_Ka"]["sources"]["all"] == "user table table.json"
    assert not (out / "figures").exists()
    proc = chemtomo("show", out, check=False)
    assert proc.returncode == 0, proc.stderr
    assert len(list((out / "figures").glob("*.png"))) == 5


# ----------------------------------------------------------------------------- bad input: clear error, nothing written

@pytest.fixture
def small(tmp_path):
    return make_series(tmp_path / "raw", n=16, angles_deg=np.arange(-40, 41, 20.0), seed=3)


def _refused(folder, tmp_path, lines=LINES, **kw) -> str:
    out = tmp_path / "out"
    with pytest.raises(ValueError) as exc:
        run_experimental(folder, lines, out, n_iter=5, bin_factor=1, progress=False, **kw)
    assert not out.exists() or not any(out.rglob("*")), list(out.rglob("*"))
    return str(exc.value)


def test_cli_refuses_a_file_that_is_not_a_spectrum_image(small, tmp_path):
    from chemtomo.io.microscope import _hs

    _hs().signals.Signal2D(np.ones((16, 16))).save(small.folder / "tilt_+60.hspy")
    out = tmp_path / "out"
    proc = chemtomo("reconstruct", small.folder, "--lines", *LINES, "--out", out, "--quiet", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0  # one line
    assert "tilt_+60.hspy holds no EDS spectrum image" in proc.stderr
    assert not out.exists()


def test_refuses_a_missing_line(small, tmp_path):
    err = _refused(small.folder, tmp_path, lines=["Co_Ka", "Fe_Ka"])
    assert "Fe_Ka" in err and "no net counts" in err
    assert "outside the spectra's energy range" in _refused(small.folder, tmp_path, lines=["Co_Ka", "U_Ka"])
    assert "unknown element 'Xx'" in _refused(small.folder, tmp_path, lines=["Co_Ka", "Xx_Ka"])


def test_refuses_mismatched_image_sizes(small, tmp_path):
    make_series(tmp_path / "other", n=20, angles_deg=[60.0], seed=4)
    for p in (tmp_path / "other").iterdir():
        p.rename(small.folder / p.name)
    assert "image sizes differ between tilts" in _refused(small.folder, tmp_path)


def test_refuses_a_duplicated_angle(small, tmp_path):
    err = _refused(small.folder, tmp_path, angles_deg=[-40, -20, 0, 20, 20])
    assert "tilt angle 20 degrees (user) is duplicated" in err


def test_refuses_a_truncated_file(small, tmp_path):
    p = small.folder / "tilt_+20.hspy"
    p.write_bytes(p.read_bytes()[:4000])
    assert "cannot be read" in _refused(small.folder, tmp_path)


def test_failure_while_writing_leaves_nothing(small, tmp_path, monkeypatch):
    import chemtomo.report.volume as rv

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(rv, "draw_result_figures", boom)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk full"):
        run_experimental(small.folder, LINES, out, factors="paper", n_iter=5, bin_factor=1, progress=False)
    assert out.exists() and not any(out.iterdir())


# ----------------------------------------------------------------------------- the real series

NCEM = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ncem-idp-eds-tilt-series"


@pytest.mark.shared_data
@pytest.mark.slow
def test_real_bcf_series_reduced_run(tmp_path):
    """The 16 raw .bcf files, binned 4x4 and 20 iterations: a quick pass over the whole path."""
    if not NCEM.is_dir():
        pytest.skip(f"shared dataset not found at {NCEM.resolve()} (../shared/data absent)")
    exp = run_experimental(NCEM, ["O_Ka", "Mg_Ka", "Si_Ka", "Fe_Ka", "Pt_La"], tmp_path / "out", bin_factor=4,
                           n_iter=20, mask_method="otsu", export=(), figures=False,
                           compare_tomviz=NCEM / "TomVizAlignments.json", tomviz_angles_deg=np.arange(-50, 51, 5),
                           progress=False)
    s = exp.pre.series
    assert s.angles_deg.tolist() == list(range(-40, 36, 5))
    assert s.pixel_nm == pytest.approx(4 * 13.081, rel=1e-3) and s.n_slices == 64
    assert exp.pre.pad_px > 0  # the lamella runs out of the field
    assert exp.factors["Fe_Ka"].beam_kev == 200.0
    assert exp.tomviz["rms_px"] < 2.5 and exp.tomviz["max_px"] < 4.0
    rr = exp.results["hebt_sirt"].response_ratios
    assert rr.r2 > 0.5
    assert (tmp_path / "out" / "result.h5").is_file()
