"""The command line's bad-input corpus (issue 12): each bad invocation is refused before any work.

Every case asserts exit code 2, a message naming the problem, no traceback and
no file written or changed (no output, no temporary). The corpus runs through
``chemtomo.cli.main`` in this process (a subprocess costs ~3 s of imports per
case); :func:`test_corpus_sample_in_subprocess` runs a sample as a user does,
in a subprocess, to check the same from the outside.

Classes: ``out`` (output paths), ``store`` (``--store`` paths), ``route`` (options
that do not apply to the route), ``depends`` (options that do not apply to the
methods run or lack the option they depend on), ``value`` (values out of range),
``angles`` (radians refused unless asserted, contradicting assertions), ``show``,
``simulate``.
"""

from __future__ import annotations

import json
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


def _folder(o: Path) -> None:
    (o / "mine").mkdir()
    (o / "mine" / "keep.txt").write_text("my data\n")


def _store(o: Path) -> None:
    """A folder that looks like a chemtomo store (its zarr.json names the format)."""
    (o / "run.zarr").mkdir()
    (o / "run.zarr" / "zarr.json").write_text(json.dumps(
        {"zarr_format": 3, "node_type": "group", "attributes": {"chemtomo": {"format": "chemtomo-volume-store"}}}))


def _radian_stacks(o: Path) -> None:
    """The corpus's stacks with their angles stored in radians (the navigation axis still says degrees)."""
    for name, v in _blob_stacks(2).items():
        to_signal(v, np.radians(ANGLES), 1.5, "test").save(o / f"{name}.hspy", overwrite=True)


def _bad_files(o: Path, d: Path) -> None:
    """Inputs that are not tilt-series stacks, and stacks that do not fit the others."""
    (o / "empty.hspy").write_bytes(b"")
    (o / "truncated.hspy").write_bytes((d / "Ag_La.hspy").read_bytes()[:300])
    (o / "image.hspy").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    (o / "text.hspy").write_text("tilt angles: -60 -30 0 30 60\n")
    with h5py.File(o / "foreign.h5", "w") as f:
        f["data"] = np.arange(3)
    stacks = _blob_stacks(2)
    to_signal(stacks["haadf"], ANGLES, 3.0, "test").save(o / "haadf_3nm.hspy")
    s = to_signal(stacks["Ag_La"], ANGLES, 1.5, "test")
    for i in (1, 2):
        s.axes_manager[i].units = ""
    s.save(o / "no_unit.hspy")
    to_signal(stacks["Ag_La"][:, :, 11:13], ANGLES, 1.5, "test").save(o / "two_px.hspy")
    import hyperspy.api as hs

    hs.signals.Signal1D(np.ones((5, 2, 24, 16), dtype=np.float32)).save(o / "spectrum_image.hspy")


def _raw_series(o: Path, names=None) -> None:
    """Five small EDS spectrum images (Fe Ka, Cu Ka; .hspy) in ``o/raw``, named ``names`` (default scan_i)."""
    from chemtomo.io.microscope import _hs

    _hs()  # HyperSpy and exSpy imported without their deprecation chatter
    import exspy

    from chemtomo.preprocess.linemaps import synthesize_spectrum_image

    (o / "raw").mkdir()
    rng = np.random.default_rng(0)
    for name in names or [f"scan_{i}" for i in range(5)]:
        maps = {"Fe_Ka": np.full((8, 10), 20.0), "Cu_Ka": np.full((8, 10), 10.0)}
        sig = exspy.signals.EDSTEMSpectrum(synthesize_spectrum_image(maps, (0.0, 0.02, 500), rng=rng))
        for ax in sig.axes_manager.navigation_axes:
            ax.units, ax.scale = "nm", 2.0
        e = sig.axes_manager.signal_axes[0]
        e.units, e.offset, e.scale = "keV", 0.0, 0.02
        sig.metadata.set_item("Acquisition_instrument.TEM.beam_energy", 200.0)
        sig.save(o / "raw" / f"{name}.hspy")


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
    # issue 15: the raw route takes --replicas/--seed now (the bootstrap); --jackknife and --bias stay stack-only
    ("raw-replicas-one", [*RAW, *OUT, "--replicas", "1"], ["--replicas", ">= 2", "got 1"], None),
    ("raw-seed", [*RAW, *OUT, "--seed", "4"], ["--seed needs --replicas"], None),
    ("raw-replicas-jackknife", [*RAW, *OUT, "--replicas", "3", "--jackknife"],
     ["--jackknife does not apply to a raw tilt series"], None),
    ("raw-and-stacks", [*RAW, *OUT, "--eds", "Ag_La={d}/Ag_La.hspy"], ["not both"], None),
    ("raw-haadf-stack", [*RAW, *OUT, "--haadf", "{d}/HAADF.hspy", "--haadf-angles", "stack"],
     ["separate HAADF stack", "is not supported", "--eds LINE=PATH", "haadf_angles_deg"], None),
    ("raw-haadf-angles", [*RAW, *OUT, "--haadf-angles", "stack"], ["separate HAADF stack", "not supported"], None),
    ("jackknife-alone", [*STACKS, *OUT, "--jackknife"], ["--jackknife needs --replicas"], None),
    ("raw-replicas-interval", [*RAW, *OUT, "--replicas", "3", "--interval", "basic"],
     ["--interval does not apply to a raw tilt series"], None),
    ("interval-alone", [*STACKS, *OUT, "--interval", "basic"], ["--interval basic needs --replicas"], None),
    ("interval-bias-without-bias", [*STACKS, *OUT, "--replicas", "3", "--interval", "bias_scaled"],
     ["--interval bias_scaled needs --bias", "percentile or basic"], None),
    ("interval-scaled-uncalibrated", [*STACKS, *OUT, "--method", "ls_tv", "--replicas", "3", "--bias", "--interval",
                                      "bias_scaled"],
     ["--interval bias_scaled", "no calibrated scale for 'ls_tv'", "eds_sirt", "--interval bias_calibrated"], None),
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
    # ---- store: --store checked with the outputs, before any work
    ("store-empty", [*STACKS, *OUT, "--store", ""], ["--store is empty"], None),
    ("store-existing-file", [*STACKS, *OUT, "--store", "{o}/afile"], ["afile is an existing file"], _file),
    ("store-under-file", [*STACKS, *OUT, "--store", "{o}/afile/run.zarr"], ["is a file, not a folder"], _file),
    ("store-holds-inputs", [*STACKS, *OUT, "--store", "{d}"], ["holds the input"], None),
    ("store-holds-output", [*STACKS, "--out", "{o}/st/r.h5", "--store", "{o}/st"], ["holds the output"], None),
    ("store-unrelated-folder", [*STACKS, *OUT, "--store", "{o}/mine"], ["not a chemtomo store", "--overwrite"],
     _folder),
    ("store-exists-no-resume", [*STACKS, *OUT, "--store", "{o}/run.zarr"],
     ["already holds a chemtomo store", "--resume"], _store),
    ("store-resume-unrelated", [*STACKS, *OUT, "--store", "{o}/mine", "--resume"], ["--resume cannot continue"],
     _folder),
    ("store-resume-and-overwrite", [*STACKS, *OUT, "--store", "{o}/run.zarr", "--resume", "--overwrite"],
     ["give one of them"], _store),
    ("resume-without-store", [*STACKS, *OUT, "--resume"], ["--resume needs --store"], None),
    ("raw-store-existing-file", [*RAW, *OUT, "--method", "eds_sirt", "--store", "{o}/afile"],
     ["afile is an existing file"], _file),
    ("raw-store-per-method-exists", [*RAW, *OUT, "--store", "{o}/s.zarr", "--method", "eds_sirt", "hebt_sirt"],
     ["s-eds_sirt.zarr", "not a chemtomo store"], lambda o: (o / "s-eds_sirt.zarr").mkdir()),
    # ---- depends: an option that does not apply to the method or without the one it depends on
    ("alpha-with-eds-sirt", [*STACKS, *OUT, "--method", "eds_sirt", "--alpha", "0.3"],
     ["--alpha 0.3", "no method run has a parameter 'alpha'", "eds_sirt: ['n_iter'"], None),
    ("mu-with-hebt-sirt", [*STACKS, *OUT, "--method", "hebt_sirt", "--mu", "0.1"],
     ["--mu 0.1", "'mu'", "hebt_sirt: ["], None),
    ("param-alpha-with-eds-sirt", [*STACKS, *OUT, "--method", "eds_sirt", "--param", "alpha=0.3"],
     ["no method run has a parameter 'alpha'"], None),
    ("haadf-mu-with-sirt", [*HAADF, *OUT, "--mu", "0.1"], ["--mu 0.1", "'mu'"], None),
    ("raw-alpha-with-eds-sirt", [*RAW, *OUT, "--method", "eds_sirt", "--alpha", "0.3"], ["'alpha'"], None),
    ("auto-grid-without-auto", [*STACKS, *OUT, "--auto-grid", "n=10,20"], ["--auto-grid needs --auto"], None),
    ("seed-without-replicas", [*STACKS, *OUT, "--seed", "3"], ["--seed needs --replicas"], None),
    ("mask-and-threshold", [*STACKS, *OUT, "--mask", "otsu", "--threshold", "0.1"], ["give one of them"], None),
    ("haadf-signal-without-haadf", ["reconstruct", "--eds", "Ag_La={d}/Ag_La.hspy", "--method", "eds_sirt",
                                    "--haadf-signal", "DF-S", *OUT], ["--haadf-signal needs --haadf"], None),
    ("raw-tomviz-angles-alone", [*RAW, *OUT, "--tomviz-angles=-50:50:5"], ["--tomviz-angles needs --compare"],
     None),
    ("raw-reference-line-not-a-line", [*RAW, *OUT, "--reference-line", "Fe_Ka"], ["--reference-line ['Fe_Ka']",
                                                                                  "not among the --lines"], None),
    ("raw-quantify-lines-not-lines", [*RAW, *OUT, "--quantify-lines", "Ag_La", "Cu_Ka"],
     ["--quantify-lines ['Cu_Ka']", "not among the --lines"], None),
    ("raw-compare-tomviz-missing", [*RAW, *OUT, "--compare-tomviz", "{o}/none.json", "--tomviz-angles=-60:60:30"],
     ["--compare-tomviz", "no such file"], None),
    ("replicas-one", [*STACKS, *OUT, "--replicas", "1"], ["--replicas", ">= 2", "got 1"], None),
    ("replicas-zero", [*STACKS, *OUT, "--replicas", "0"], ["--replicas", ">= 2", "got 0"], None),
    ("raw-reference-line-no-register", [*RAW, *OUT, "--register", "none", "--reference-line", "Ag_La"],
     ["--reference-line", "--register none"], None),
    ("export-kinds-without-export", [*STACKS, *OUT, "--export", "none", "--export-kinds", "mask"],
     ["--export-kinds", "--export none"], None),
    ("map-units-nothing-written", [*STACKS, *OUT, "--export", "none", "--map-units", "per_pixel"],
     ["--map-units", "writes neither"], None),
    ("beam-kev-with-paper", [*STACKS, *OUT, "--beam-kev", "300"], ["--beam-kev 300", "Table 2"], None),
    ("beam-kev-with-table", [*STACKS[:-3], "--factors", "{o}/t.json", "--quiet", *OUT, "--beam-kev", "200"],
     ["--beam-kev does not apply to a factor table"], None),
    ("efficiency-with-table", [*STACKS[:-3], "--factors", "{o}/t.json", "--quiet", *OUT, "--efficiency", "0.5"],
     ["--efficiency does not apply to a factor table"], None),
    # ---- angles: radians refused unless asserted; an assertion that contradicts the values refused
    ("angles-given-in-radians", [*STACKS, *OUT, "--angles", "-1.0472", "-0.5236", "0", "0.5236", "1.0472"],
     ["look like radians", "--angles-unit rad"], None),
    ("stack-angles-in-radians", ["reconstruct", "--eds", "Ag_La={o}/Ag_La.hspy", "--eds", "Au_Ma={o}/Au_Ma.hspy",
                                 "--haadf", "{o}/haadf.hspy", "--factors", "paper", "--quiet", *OUT],
     ["look like radians", "--angles-unit rad"], _radian_stacks),
    ("haadf-angles-in-radians", ["reconstruct", "--haadf", "{o}/haadf.hspy", "--quiet", *OUT],
     ["look like radians", "--angles-unit rad"], _radian_stacks),
    ("degrees-asserted-as-radians", [*STACKS, *OUT, "--angles-unit", "rad"], ["asserted to be radians",
                                                                             "beyond pi/2"], None),
    ("given-degrees-asserted-as-radians", [*HAADF, *OUT, "--angles-unit", "rad", "--angles", "-60", "-30", "0",
                                           "30", "60"], ["asserted to be radians", "look like degrees"], None),
    # ---- input: files that cannot be read or do not fit, named with the reason
    *[(f"input-{name}", ["reconstruct", "--eds", f"Ag_La={{o}}/{fname}", "--haadf", "{d}/haadf.hspy", "--factors",
                         "paper", "--quiet", *OUT], [fname, *words], _bad_files)
      for name, fname, words in (
          ("empty", "empty.hspy", ["empty file"]),
          ("truncated", "truncated.hspy", ["cannot be read", "truncated"]),
          ("png", "image.hspy", ["cannot be read"]),
          ("text", "text.hspy", ["cannot be read"]),
          ("foreign-hdf5", "foreign.h5", ["cannot be read", "not a valid HyperSpy"]),
          ("spectrum-image", "spectrum_image.hspy", ["must be a stack of 2-D images"]),
          ("no-pixel-unit", "no_unit.hspy", ["no length unit", "--pixel-nm"]),
          ("missing", "nope.hspy", ["no such file"]))],
    ("input-folder-as-stack", [*STACKS[:2], "Ag_La={d}", *STACKS[3:], *OUT], ["no such file", "data"], None),
    ("haadf-at-other-pixel-size", ["reconstruct", "--eds", "Ag_La={d}/Ag_La.hspy", "--haadf", "{o}/haadf_3nm.hspy",
                                   "--factors", "paper", "--quiet", *OUT], ["pixel sizes differ", "3 nm"],
     _bad_files),
    ("pixel-nm-zero", [*STACKS, *OUT, "--pixel-nm", "0"], ["--pixel-nm", "got 0"], None),
    ("pixel-nm-nan", [*STACKS, *OUT, "--pixel-nm", "nan"], ["--pixel-nm", "nan"], None),
    ("two-pixel-images", ["reconstruct", "--eds", "Ag_La={o}/two_px.hspy", "--method", "eds_sirt", "--factors",
                          "paper", "--quiet", *OUT], ["2 pixels across the tilt axis", "at least 4"], _bad_files),
    ("two-lines-of-one-element", ["reconstruct", "--eds", "Ag_La={d}/Ag_La.hspy", "--eds", "Ag_Ka={d}/Au_Ma.hspy",
                                  "--method", "eds_sirt", "--beam-kev", "200", "--quiet", *OUT],
     ["['Ag_La', 'Ag_Ka'] are all of element Ag"], None),
    ("filter-wider-than-images", [*STACKS, *OUT, "--filter-sigma", "1000"], ["--filter-sigma", "wider than the images"],
     None),
    ("filter-negative", [*STACKS, *OUT, "--filter-sigma", "-1"], ["sigma", "non-negative"], None),
    ("chunk-slices-zero", [*STACKS, *OUT, "--chunk-slices", "0"], ["chunk_slices", "positive"], None),
    ("efficiency-five", [*STACKS, *OUT, "--efficiency", "5"], ["efficiency", "(0, 1]", "5"], None),
    ("raw-angles-given-in-radians", ["reconstruct", "{o}/raw", "--lines", "Fe_Ka", "Cu_Ka", "--quiet", *OUT,
                                     "--angles", "-0.6981", "-0.3491", "0", "0.3491", "0.6981"],
     ["(user)", "look like radians", "--angles-unit rad"], lambda o: _raw_series(o)),
    ("raw-file-names-in-radians", ["reconstruct", "{o}/raw", "--lines", "Fe_Ka", "Cu_Ka", "--quiet", *OUT],
     ["(filename)", "look like radians", "--angles-unit rad"],
     lambda o: _raw_series(o, [f"tilt_{a:.4f}" for a in np.radians([-40, -20, 0, 20, 40])])),
    ("raw-degrees-asserted-as-radians", ["reconstruct", "{o}/raw", "--lines", "Fe_Ka", "Cu_Ka", "--quiet", *OUT,
                                         "--angles-unit", "rad"], ["asserted to be radians", "beyond pi/2"],
     lambda o: _raw_series(o, [f"tilt_{a:+d}" for a in (-40, -20, 0, 20, 40)])),
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


# --------------------------------------------------------------------------- radians asserted, stores, simulate

def test_radians_asserted_give_the_degree_result(one_slice, tmp_path, capsys):
    """Stacks whose angles are radians, read with --angles-unit rad: the same maps as the degree stacks."""
    rad = tmp_path / "rad"
    rad.mkdir()
    for name, v in _blob_stacks(1).items():
        to_signal(v, np.radians(ANGLES), 1.5, "test").save(rad / f"{name}.hspy")
    assert _reconstruct(rad, tmp_path / "refused") == 2
    assert "look like radians" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    assert _reconstruct(rad, tmp_path / "res", "--angles-unit", "rad") == 0
    with h5py.File(one_slice / "res" / "result.h5") as f, h5py.File(tmp_path / "res" / "result.h5") as g:
        for line in ("Ag_La", "Au_Ma"):
            ref = f[f"maps/{line}"][()]
            np.testing.assert_allclose(g[f"maps/{line}"][()], ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_store_overwrite_replaces_an_unrelated_folder_only_when_asked(one_slice, tmp_path, capsys):
    _folder(tmp_path)
    store = tmp_path / "mine"
    assert _reconstruct(one_slice, tmp_path / "r1", "--store", str(store)) == 2
    assert "not a chemtomo store" in capsys.readouterr().err
    assert (store / "keep.txt").is_file() and not (tmp_path / "r1").exists()
    assert _reconstruct(one_slice, tmp_path / "r2", "--store", str(store), "--overwrite") == 0
    assert not (store / "keep.txt").exists() and (store / "zarr.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "a temporary was left"
    # the store now exists: without --resume or --overwrite it is refused, with --resume it is continued
    assert _reconstruct(one_slice, tmp_path / "r3", "--store", str(store)) == 2
    assert "already holds a chemtomo store" in capsys.readouterr().err
    assert _reconstruct(one_slice, tmp_path / "r4", "--store", str(store), "--resume") == 0
    with h5py.File(tmp_path / "r2" / "result.h5") as f, h5py.File(tmp_path / "r4" / "result.h5") as g:
        np.testing.assert_array_equal(f["maps/Ag_La"][()], g["maps/Ag_La"][()])


def test_simulate_writes_all_files_or_none(tmp_path, monkeypatch):
    import chemtomo.io.hspy as hspy

    real = hspy.write_tilt_series

    def fail_after_writing(folder, series):
        real(folder, series)
        raise OSError("disk full")

    monkeypatch.setattr(hspy, "write_tilt_series", fail_after_writing)
    out = tmp_path / "new" / "sim"
    with pytest.raises(OSError, match="disk full"):
        main(["simulate", "--out", str(out), "--noiseless"])
    assert not (tmp_path / "new").exists(), "simulate left a folder or files behind"
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    with pytest.raises(OSError, match="disk full"):
        main(["simulate", "--out", str(existing), "--noiseless"])
    assert sorted(p.name for p in existing.iterdir()) == ["keep.txt"]


def test_memory_beyond_the_machine_is_a_stated_estimate(data, tmp_path, capsys, monkeypatch):
    """A run that does not fit: exit 2 with the memory one slice needs, no traceback, nothing written."""
    import chemtomo.pipeline.distributed as dist

    monkeypatch.setattr(dist, "default_memory_budget", lambda: 1024)  # a machine with 1 KiB to spare
    o = tmp_path / "work"
    o.mkdir()
    before = _snapshot(data, o)
    code = main(_argv([*STACKS, "--out", "{o}/res"], data, o))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "out of memory" in err and "GiB" in err and "needs" in err, err
    assert _snapshot(data, o) == before


def test_staging_folder_of_a_killed_run_is_removed(one_slice, tmp_path, caplog):
    """A SIGKILLed show/simulate/raw run leaves out/.staging-PID: the next run into out removes it and says so."""
    out = tmp_path / "figs"
    stale = out / ".staging-999999999"  # no such process
    stale.mkdir(parents=True)
    (stale / "fig15_orthoslices_maps.png").write_bytes(b"half")
    assert main(["show", str(one_slice / "res"), "--out", str(out)]) == 0
    assert not stale.exists()
    assert "no longer running" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["fig15_orthoslices_maps.png", "fig16_orthoslices_weight.png"]
