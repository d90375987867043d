"""The command line's bad-input corpus (issue 12): each bad invocation is refused before any work.

Every case asserts exit code 2, a message naming the problem, no traceback and
no file written or changed (no output, no temporary). The corpus runs through
``chemtomo.cli.main`` in this process (a subprocess costs ~3 s of imports per
case); :func:`test_corpus_sample_in_subprocess` runs a sample as a user does,
in a subprocess, to check the same from the outside.

Classes: ``out`` (output paths), ``route`` (options that do not apply to the
route), ``value`` (values out of range), ``show``, ``simulate``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from chemtomo.cli import main
from chemtomo.io.hspy import to_signal

ANGLES = np.array([-60.0, -30, 0, 30, 60])


def _write_stack(path, data):
    to_signal(data, ANGLES, 1.5, "test").save(path, overwrite=True)


def _blob_stacks(n_slices: int) -> dict[str, np.ndarray]:
    """Projections of a centred disk: 5 tilts, ``n_slices`` slices, 24 pixels; counts ~100."""
    x = np.arange(24) - 11.5
    prof = np.clip(1 - (x / 7) ** 2, 0, None) ** 0.5 * 14
    rng = np.random.default_rng(1)
    out = {}
    for name, scale in (("haadf", 50.0), ("Ag_La", 8.0), ("Au_Ma", 5.0)):
        mean = np.broadcast_to(prof * scale, (ANGLES.size, n_slices, 24))
        out[name] = rng.poisson(mean).astype(np.float32)
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Tiny valid stacks (haadf, Ag_La, Au_Ma .hspy) and a minimal chemtomo-result-formatted file."""
    d = tmp_path_factory.mktemp("data")
    for name, v in _blob_stacks(2).items():
        _write_stack(d / f"{name}.hspy", v)
    with h5py.File(d / "fake_result.h5", "w") as f:
        f.attrs["format"] = "chemtomo-result"
    (d / "notes.txt").write_text("not a result\n")
    return d


def _snapshot(*roots: Path) -> dict:
    """Every file and folder under ``roots`` with its size and modification time."""
    out = {}
    for root in roots:
        for p in [root, *root.rglob("*")]:
            st = p.stat()
            out[p] = (p.is_dir(), st.st_size if p.is_file() else 0, st.st_mtime_ns)
    return out


# --------------------------------------------------------------------------- setups of the output cases

def _file(o: Path) -> None:
    (o / "afile").write_text("x")


def _unrelated_h5(o: Path) -> None:
    with h5py.File(o / "other.h5", "w") as f:
        f["data"] = np.arange(3)


def _text_h5(o: Path) -> None:
    (o / "notes.h5").write_text("my notes\n")


def _folder_h5(o: Path) -> None:
    (o / "x.h5").mkdir()


def _input_h5(o: Path, d: Path) -> None:
    shutil.copy(d / "Ag_La.hspy", o / "in.h5")


def _readonly_dir(o: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes in read-only folders (the parent-is-a-file cases cover unwritable paths)")
    (o / "ro").mkdir()
    (o / "ro").chmod(0o555)


def _readonly_result(o: Path, d: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes read-only files")
    shutil.copy(d / "fake_result.h5", o / "ro.h5")
    (o / "ro.h5").chmod(0o444)


STACKS = ["reconstruct", "--eds", "Ag_La={d}/Ag_La.hspy", "--eds", "Au_Ma={d}/Au_Ma.hspy",
          "--haadf", "{d}/haadf.hspy", "--factors", "paper", "--quiet"]
HAADF = ["reconstruct", "--haadf", "{d}/haadf.hspy", "--quiet"]
RAW = ["reconstruct", "{d}", "--lines", "Ag_La", "Au_Ma", "--quiet"]
OUT = ["--out", "{o}/res"]

# (id, argv, words the message must hold, setup)
CASES = [
    # ---- out: output paths, checked before any work
    ("out-empty", [*STACKS, "--out", ""], ["--out is empty"], None),
    ("out-parent-is-file", [*STACKS, "--out", "{o}/afile/r.h5"], ["afile", "is a file, not a folder"], _file),
    ("out-folder-under-file", [*STACKS, "--out", "{o}/afile/sub"], ["afile", "is a file, not a folder"], _file),
    ("out-folder-named-h5", [*STACKS, "--out", "{o}/x.h5"], ["x.h5 is a folder, not a file"], _folder_h5),
    ("out-is-input", ["reconstruct", "--eds", "Ag_La={o}/in.h5", "--method", "eds_sirt", "--factors", "paper",
                      "--out", "{o}/in.h5"], ["in.h5 is one of the inputs"], _input_h5),
    ("out-unrelated-h5", [*STACKS, "--out", "{o}/other.h5"], ["not a chemtomo result", "--overwrite"],
     _unrelated_h5),
    ("out-text-named-h5", [*STACKS, "--out", "{o}/notes.h5"], ["not a chemtomo result", "--overwrite"], _text_h5),
    ("out-readonly-folder", [*STACKS, "--out", "{o}/ro/r.h5"], ["permission denied"], _readonly_dir),
    ("out-readonly-file", [*STACKS, "--out", "{o}/ro.h5"], ["ro.h5 exists and is read-only"], _readonly_result),
    ("haadf-out-parent-is-file", [*HAADF, "--out", "{o}/afile/r.h5"], ["is a file, not a folder"], _file),
    ("haadf-out-is-input", [*HAADF, "--out", "{d}/haadf.hspy"], ["haadf.hspy", "is a file, not a folder"], None),
    ("haadf-out-unrelated-h5", [*HAADF, "--out", "{o}/other.h5"], ["not a chemtomo result"], _unrelated_h5),
    ("raw-out-empty", [*RAW, "--out", ""], ["--out is empty"], None),
    ("raw-out-existing-file", [*RAW, "--out", "{o}/afile"], ["afile is an existing file", "folder"], _file),
    ("raw-out-is-input", [*RAW, "--out", "{d}/Ag_La.hspy"], ["Ag_La.hspy is an existing file"], None),
    ("raw-out-under-file", [*RAW, "--out", "{o}/afile/sub"], ["is a file, not a folder"], _file),
    ("raw-out-h5", [*RAW, "--out", "{o}/r.h5"], ["writes a folder"], None),
    ("raw-out-readonly-folder", [*RAW, "--out", "{o}/ro/sub"], ["permission denied"], _readonly_dir),
    # ---- route: options that do not apply to the route, named with the route
    *[(f"stacks-raw-option{flag}", [*STACKS, *OUT, flag, *vals],
       [flag.split("=")[0], "does not apply to --eds/--haadf stacks"], None)
      for flag, vals in (("--bin", ["3"]), ("--pad", ["4"]), ("--register", ["com"]), ("--align", ["com"]),
                         ("--no-rotation", []), ("--no-axis-offset", []), ("--line-method", ["fit"]),
                         ("--integration-width", ["3"]), ("--elements", ["Ag", "Au"]),
                         ("--compare-tomviz", ["t.json"]), ("--tomviz-angles=-50:50:5", []),
                         ("--shadowing", ["max"]), ("--reference-line", ["Ag_La"]),
                         ("--quantify-lines", ["Ag_La"]), ("--no-figures", []), ("--angles-from", ["filename"]))],
    ("stacks-two-raw-options", [*STACKS, *OUT, "--bin", "3", "--pad", "0"], ["--bin, --pad do not apply"], None),
    ("stacks-lines", [*STACKS, *OUT, "--lines", "Ag_La"], ["--lines applies to a raw tilt series"], None),
    ("haadf-raw-option", [*HAADF, *OUT, "--align", "none"], ["--align does not apply to --eds/--haadf"], None),
    ("haadf-eds-option", [*HAADF, *OUT, "--mask", "otsu"], ["--mask", "HAADF-only"], None),
    ("haadf-threshold", [*HAADF, *OUT, "--threshold", "0.1"], ["--threshold", "HAADF-only"], None),
    ("raw-tilt-axis", [*RAW, *OUT, "--tilt-axis", "rows"], ["--tilt-axis does not apply to a raw tilt series"],
     None),
    ("raw-replicas", [*RAW, *OUT, "--replicas", "3"], ["--replicas does not apply to a raw tilt series"], None),
    ("raw-seed", [*RAW, *OUT, "--seed", "4"], ["--seed does not apply to a raw tilt series"], None),
    ("raw-replicas-jackknife", [*RAW, *OUT, "--replicas", "3", "--jackknife"], ["--replicas, --jackknife do not"],
     None),
    ("raw-and-stacks", [*RAW, *OUT, "--eds", "Ag_La={d}/Ag_La.hspy"], ["not both"], None),
    ("raw-haadf-stack", [*RAW, *OUT, "--haadf", "{d}/HAADF.hspy", "--haadf-angles", "stack"],
     ["separate HAADF stack", "is not supported", "--eds LINE=PATH", "haadf_angles_deg"], None),
    ("raw-haadf-angles", [*RAW, *OUT, "--haadf-angles", "stack"], ["separate HAADF stack", "not supported"], None),
    ("jackknife-alone", [*STACKS, *OUT, "--jackknife"], ["--jackknife needs --replicas"], None),
    # ---- value: out of range, named with the option
    ("raw-integration-width-negative", [*RAW, *OUT, "--integration-width", "-1"], ["--integration-width", "-1"],
     None),
    ("raw-integration-width-nan", [*RAW, *OUT, "--integration-width", "nan"], ["--integration-width", "nan"], None),
    ("raw-elements-unknown", [*RAW, *OUT, "--elements", "Fe", "Zz"], ["--elements", "'Zz'"], None),
    ("raw-elements-lowercase", [*RAW, *OUT, "--elements", "ag"], ["--elements", "did you mean 'Ag'"], None),
    ("raw-bin-zero", [*RAW, *OUT, "--bin", "0"], ["--bin", ">= 1"], None),
    ("raw-pad-negative", [*RAW, *OUT, "--pad", "-1"], ["--pad", ">= 0"], None),
    ("raw-no-lines", ["reconstruct", "{d}", *OUT], ["--lines"], None),
    ("unknown-method-iterations", [*STACKS, *OUT, "-n", "foo_tv=5"], ["foo_tv"], None),
    ("iterations-zero", [*STACKS, *OUT, "-n", "0"], ["positive integer"], None),
    ("alpha-above-one", [*STACKS, *OUT, "--alpha", "2"], ["[0, 1)"], None),
    ("eds-without-equals", ["reconstruct", "--eds", "{d}/Ag_La.hspy", *OUT], ["--eds takes LINE=PATH"], None),
    ("eds-line-twice", ["reconstruct", "--eds", "Ag_La={d}/Ag_La.hspy", "--eds", "Ag_La={d}/Au_Ma.hspy", *OUT],
     ["'Ag_La' given twice"], None),
    ("no-input", ["reconstruct", *OUT], ["give a raw tilt series"], None),
    # ---- simulate
    ("simulate-seed-negative", ["simulate", "--out", "{o}/sim", "--seed", "-1"], ["--seed", "-1"], None),
    ("simulate-slices-zero", ["simulate", "--out", "{o}/sim", "--slices", "0"], ["--slices", ">= 1"], None),
    ("simulate-dose-zero", ["simulate", "--out", "{o}/sim", "--dose-scale", "0"], ["--dose-scale"], None),
    ("simulate-out-empty", ["simulate", "--out", ""], ["--out is empty"], None),
    ("simulate-out-file", ["simulate", "--out", "{o}/afile"], ["afile is an existing file"], _file),
    ("simulate-out-under-file", ["simulate", "--out", "{o}/afile/sim"], ["is a file, not a folder"], _file),
    # ---- show
    ("show-missing", ["show", "{o}/none.h5"], ["no result file"], None),
    ("show-text-file", ["show", "{d}/notes.txt"], ["notes.txt is not a chemtomo result"], None),
    ("show-unrelated-h5", ["show", "{o}/other.h5"], ["other.h5 is not a chemtomo result"], _unrelated_h5),
    ("show-out-empty", ["show", "{d}/fake_result.h5", "--out", ""], ["--out is empty"], None),
    ("show-out-file", ["show", "{d}/fake_result.h5", "--out", "{o}/afile"], ["afile is an existing file"], _file),
    ("show-out-under-file", ["show", "{d}/fake_result.h5", "--out", "{o}/afile/figs"],
     ["is a file, not a folder"], _file),
]


def _argv(template, d: Path, o: Path) -> list[str]:
    return [a.replace("{d}", str(d)).replace("{o}", str(o)) for a in template]


def _setup(setup, o: Path, d: Path) -> None:
    if setup is None:
        return
    if setup.__code__.co_argcount == 2:
        setup(o, d)
    else:
        setup(o)


def test_corpus_size():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 40


@pytest.mark.parametrize(("template", "words", "setup"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_invocation_refused(template, words, setup, data, tmp_path, capsys, monkeypatch):
    o = tmp_path / "work"
    o.mkdir()
    _setup(setup, o, data)
    monkeypatch.chdir(o)  # anything written by a relative path would land here
    before = _snapshot(data, o)
    code = main(_argv(template, data, o))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, (w, err)
    assert _snapshot(data, o) == before, "a file was written or changed"


SAMPLE = ["out-empty", "out-parent-is-file", "out-unrelated-h5", "raw-out-existing-file", "stacks-raw-option--bin",
          "raw-tilt-axis", "raw-elements-unknown", "simulate-seed-negative", "show-text-file"]


def test_corpus_sample_in_subprocess(data, tmp_path):
    """A sample of the corpus as a user runs it: exit 2, the message, no traceback, nothing written."""
    cases = {c[0]: c for c in CASES}
    for name in SAMPLE:
        _, template, words, setup = cases[name]
        o = tmp_path / name
        o.mkdir()
        _setup(setup, o, data)
        before = _snapshot(data, o)
        proc = subprocess.run([sys.executable, "-c", "import sys; from chemtomo.cli import main; sys.exit(main())",
                               *_argv(template, data, o)], capture_output=True, text=True, timeout=300, cwd=o)
        assert proc.returncode == 2, (name, proc.stderr)
        assert "Traceback" not in proc.stderr, (name, proc.stderr)
        assert all(w in proc.stderr for w in words), (name, words, proc.stderr)
        assert _snapshot(data, o) == before, name


# --------------------------------------------------------------------------- overwriting and show

def _reconstruct(folder: Path, out: Path, *extra) -> int:
    return main(["reconstruct", "--eds", f"Ag_La={folder / 'Ag_La.hspy'}", "--eds", f"Au_Ma={folder / 'Au_Ma.hspy'}",
                 "--method", "eds_sirt", "-n", "5", "--factors", "paper", "--export", "none", "--out", str(out),
                 "--quiet", *extra])


@pytest.fixture(scope="module")
def one_slice(tmp_path_factory) -> Path:
    """A one-slice series and its reconstruction (result.h5 in res/)."""
    d = tmp_path_factory.mktemp("one")
    for name, v in _blob_stacks(1).items():
        _write_stack(d / f"{name}.hspy", v)
    assert _reconstruct(d, d / "res") == 0
    return d


def test_overwrite_replaces_unrelated_file_only_when_asked(one_slice, tmp_path, capsys):
    target = tmp_path / "other.h5"
    _unrelated_h5(tmp_path)
    assert _reconstruct(one_slice, target) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert _reconstruct(one_slice, target, "--overwrite") == 0
    with h5py.File(target) as f:
        assert f.attrs["format"] == "chemtomo-result"
    assert _reconstruct(one_slice, target) == 0  # a chemtomo result is replaced as a re-run replaces its output


def test_show_one_slice_result(one_slice, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["show", str(one_slice / "res"), "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["fig15_orthoslices_maps.png", "fig16_orthoslices_weight.png"]
    assert "no 3-D rendering" in capsys.readouterr().err


def test_show_writes_all_figures_or_none(one_slice, tmp_path, monkeypatch):
    import chemtomo.report.volume as rv

    real = rv.fig_orthoslices
    calls = []

    def fail_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("drawing failed")
        return real(*a, **k)

    monkeypatch.setattr(rv, "fig_orthoslices", fail_second)
    out = tmp_path / "figs"
    assert main(["show", str(one_slice / "res"), "--out", str(out)]) == 2
    assert len(calls) == 2
    assert not out.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    calls.clear()
    assert main(["show", str(one_slice / "res"), "--out", str(existing)]) == 2
    assert sorted(p.name for p in existing.iterdir()) == ["keep.txt"]
