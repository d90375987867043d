"""The experimental path's stages and their options: validated once, routed by name, files all or nothing.

Fast checks of the reshaped path (issue 10, "each stage in its own room"): the
options dataclasses refuse bad values and unknown names with the allowed ones,
every keyword of ``run_experimental`` belongs to exactly one stage, the one
``resolve_factors`` checks a table's lines, the one JSON helper writes NumPy
values as numbers, an output folder is staged, and figures never touch pyplot
or the process's matplotlib backend.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import numpy as np
import pytest

from chemtomo.io.experimental_result import staged_folder
from chemtomo.io.factors import resolve_factors
from chemtomo.io.provenance import to_json
from chemtomo.pipeline.experimental import STAGES, run_experimental
from chemtomo.pipeline.options import OutputOptions, ReconstructionOptions, route_overrides
from chemtomo.preprocess import LineMapOptions, PreprocessOptions, preprocess_tilt_series


@pytest.mark.parametrize("kw, match", [
    (dict(register="sift"), "register must be one of"),
    (dict(align="phase"), "align must be one of"),
    (dict(shadowing="median"), "shadowing must be one of"),
    (dict(bin_factor=0), "bin_factor must be an integer >= 1"),
    (dict(pad=-1), "pad must be >= 0 pixels or 'auto'"),
    (dict(filter_sigma=-0.5), "filter_sigma must be >= 0"),
])
def test_preprocess_options_refuse_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        PreprocessOptions(**kw)


def test_options_are_frozen_with_the_clis_defaults():
    o = PreprocessOptions()
    assert (o.register, o.align, o.bin_factor, o.shadowing, o.pad, o.filter_sigma) == ("xcorr", "xcorr", 2, "mean",
                                                                                         "auto", 0.8)
    with pytest.raises(FrozenInstanceError):
        o.bin_factor = 4
    r = ReconstructionOptions()
    assert (r.factors, r.efficiency, tuple(r.methods), r.chunk_slices, r.mask_method) == (
        "physics", 0.96, ("eds_sirt", "hebt_sirt"), 32, "esf")


@pytest.mark.parametrize("cls, kw, match", [
    (LineMapOptions, dict(line_method="peaks"), "line_method must be one of"),
    (LineMapOptions, dict(angle_source="exif"), "angle_source must be one of"),
    (LineMapOptions, dict(integration_width=0), "integration_width must be > 0"),
    (ReconstructionOptions, dict(methods=()), "give at least one method"),
    (ReconstructionOptions, dict(mask_method="li"), "mask_method must be one of"),
    (ReconstructionOptions, dict(efficiency=1.5), r"efficiency must be in \(0, 1\]"),
    (OutputOptions, dict(export=("png",)), "export formats"),
    (OutputOptions, dict(export_kinds=("density",)), "export kinds"),
    (OutputOptions, dict(compare_tomviz="tv.json"), "compare_tomviz needs tomviz_angles_deg"),
])
def test_stage_options_refuse_bad_values(cls, kw, match):
    with pytest.raises(ValueError, match=match):
        cls(**kw)


def test_method_keyed_options_are_canonical_and_checked():
    # hyphenated names key the same method as the CLI's: before, only `methods` was normalised and the
    # per-method n_iter, method_options, auto and auto_grid of "fused-tv" were silently ignored
    r = ReconstructionOptions(methods=["eds-sirt", "fused-tv"], n_iter={"default": 50, "fused-tv": 300},
                              method_options={"fused-tv": {"mu": 0.2}}, auto=["fused-tv"],
                              auto_grid={"fused-tv": {"mu": (0.1, 0.2)}})
    assert r.methods == ("eds_sirt", "fused_tv") and r.n_iter == {"default": 50, "fused_tv": 300}
    assert r.method_options == {"fused_tv": {"mu": 0.2}} and r.auto == ("fused_tv",)
    assert r.auto_grid == {"fused_tv": {"mu": (0.1, 0.2)}}
    for kw, match in ((dict(methods=["hebt_sirtt"]), "unknown reconstruction method"),
                      (dict(n_iter={"fused_tv": 300}), "n_iter names 'fused_tv'"),
                      (dict(method_options={"hebt_sirt": {"alhpa": 0.5}}), r"unknown parameter\(s\) \['alhpa'\]"),
                      (dict(method_options={"fused_tv": {"mu": 0.2}}), "method_options names 'fused_tv'"),
                      (dict(auto=["ls_tv"]), "auto names"),
                      (dict(auto_grid={"fused_tv": {"mu": (0.1,)}}), "auto_grid names")):
        with pytest.raises(ValueError, match=match):
            ReconstructionOptions(**kw)


def test_every_keyword_belongs_to_one_stage_and_unknown_ones_are_named(tmp_path):
    routed = route_overrides({"bin_factor": 1, "n_iter": 5, "figures": False, "pixel_nm": 2.0}, STAGES)
    assert routed == {"line_maps": {"pixel_nm": 2.0}, "preprocess": {"bin_factor": 1},
                      "reconstruction": {"n_iter": 5}, "output": {"figures": False}}
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['bin'\].*bin_factor"):
        run_experimental(tmp_path / "nothing", ["Co_Ka"], tmp_path / "out", bin=1)
    assert not (tmp_path / "out").exists()


def test_preprocess_takes_options_or_their_names():
    rng = np.random.default_rng(0)
    eds = {"Co_Ka": rng.poisson(5.0, (3, 16, 16)).astype(np.float32)}
    ang = [-30.0, 0.0, 30.0]
    kw = dict(register="none", align="none", bin_factor=1, pad=0)
    a = preprocess_tilt_series(eds, None, ang, 1.0, PreprocessOptions(**kw), progress=False)
    b = preprocess_tilt_series(eds, None, ang, 1.0, progress=False, **kw)
    np.testing.assert_array_equal(a.series.eds["Co_Ka"], b.series.eds["Co_Ka"])
    with pytest.raises(ValueError, match=r"unknown preprocess options \['binning'\]"):
        preprocess_tilt_series(eds, None, ang, 1.0, binning=2)


def test_resolve_factors_checks_a_tables_lines_and_keeps_their_order(tmp_path):
    from chemtomo.physics import paper_table2

    table = tmp_path / "t.json"
    table.write_text(json.dumps(paper_table2(["Ag_La", "Au_Ma"]).as_dict()))
    fac = resolve_factors(str(table), ["Au_Ma", "Ag_La"], None)
    assert list(fac) == ["Au_Ma", "Ag_La"]
    with pytest.raises(KeyError, match=r"no line\(s\) \['Cu_Ka'\]"):
        resolve_factors(str(table), ["Ag_La", "Cu_Ka"], None)
    with pytest.raises(ValueError, match="beam energy"):
        resolve_factors("physics", ["Ag_La"], None)


def test_one_json_helper_writes_numpy_values_as_numbers():
    text = to_json({"a": np.arange(2), "f": np.float32(0.5), "b": np.bool_(True), "p": Path("x")})
    assert json.loads(text) == {"a": [0, 1], "f": 0.5, "b": True, "p": "x"}


def test_staged_folder_moves_all_or_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with staged_folder(out) as stage:
            (stage / "result.h5").write_text("x")
            raise RuntimeError("disk full")
    assert out.is_dir() and not any(out.iterdir())
    with staged_folder(out) as stage:
        (stage / "figures").mkdir()
        (stage / "figures" / "a.png").write_text("x")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["figures", "figures/a.png"]
    with pytest.raises(ValueError, match="writes a folder"):
        with staged_folder(tmp_path / "result.h5"):
            pass


def test_figures_leave_pyplot_and_the_backend_alone(tmp_path):
    code = f"""
import sys, matplotlib
matplotlib.use("pdf")
import numpy as np
from chemtomo.report.volume import fig_orthoslices, fig_render3d
g = np.indices((16, 16, 16)) - 7.5
r = np.sqrt((g ** 2).sum(0))
mask = r < 6
co = np.where(mask, 1 - r / 6, 0.0)
p1 = fig_orthoslices({{"m": {{"Co_Ka": co}}}}, r"{tmp_path / 'o.png'}")
p2 = fig_render3d({{"Co": co, "Zn": np.where(mask, r / 6, 0.0)}}, mask, r"{tmp_path / 'r.png'}")
assert matplotlib.get_backend() == "pdf", matplotlib.get_backend()
assert "matplotlib.pyplot" not in sys.modules
print(p1.stat().st_size > 0 and p2.stat().st_size > 0)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"
