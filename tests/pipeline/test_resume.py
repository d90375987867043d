"""A run killed by SIGKILL mid-volume and resumed gives the same bits as an uninterrupted run.

Both runs are the real command line (``python -m chemtomo reconstruct --store ...``) on
.hspy files; the victim is killed once a few chunks are recorded in its store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from chemtomo.pipeline.store import VolumeStore

sys.path.insert(0, str(Path(__file__).parent))
from test_distributed import core_shell_series  # noqa: E402

N_SLICES, CHUNK, N_ITER = 32, 4, 150


def command(folder: Path, store: Path, out: Path, *extra) -> list[str]:
    return [sys.executable, "-m", "chemtomo", "reconstruct",
            "--eds", f"Ag_La={folder / 'eds_Ag_La.hspy'}", "--eds", f"Au_Ma={folder / 'eds_Au_Ma.hspy'}",
            "--haadf", str(folder / "haadf.hspy"), "--factors", "paper", "-n", str(N_ITER),
            "--chunk-slices", str(CHUNK), "--store", str(store), "--out", str(out), "--quiet", *extra]


def recorded(store: Path) -> dict:
    try:
        return json.loads((store / "zarr.json").read_text())["attributes"]["chemtomo_chunks"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return {}


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    from chemtomo.io import read_result
    from chemtomo.io.hspy import write_tilt_series

    series = core_shell_series(n_slices=N_SLICES, n_pixels=64)
    write_tilt_series(tmp_path / "in", series)
    env = {**os.environ, "CHEMTOMO_SCHEDULER": ""}  # in process, whatever the caller's environment
    ref_store, victim_store = tmp_path / "ref.zarr", tmp_path / "victim.zarr"
    ref = subprocess.Popen(command(tmp_path / "in", ref_store, tmp_path / "ref.h5"), env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = subprocess.Popen(command(tmp_path / "in", victim_store, tmp_path / "victim.h5"), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    n_chunks = N_SLICES // CHUNK
    deadline = time.monotonic() + 120
    while len(recorded(victim_store)) < 2 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    before = recorded(victim_store)
    assert 2 <= len(before) < n_chunks, f"the kill did not land mid-volume ({len(before)} of {n_chunks} chunks)"
    assert not (tmp_path / "victim.h5").exists()

    resumed = subprocess.run(command(tmp_path / "in", victim_store, tmp_path / "victim.h5", "--resume"), env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    _, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err

    after = recorded(victim_store)
    for i, rec in before.items():  # chunks done before the kill were kept, not recomputed
        assert after[i] == rec and rec["pid"] == victim.pid
    assert {rec["pid"] for i, rec in after.items() if i not in before} != {victim.pid}

    a, b = VolumeStore.read(ref_store), VolumeStore.read(victim_store)
    assert b.verify() == (list(range(n_chunks)), [])
    for name in ("maps", "fractions/weight", "fractions/atomic", "mask"):
        x, y = np.asarray(a.group[name]), np.asarray(b.group[name])
        assert x.dtype == y.dtype and np.array_equal(x, y), f"{name} differs"
    ra, rb = read_result(tmp_path / "ref.h5"), read_result(tmp_path / "victim.h5")
    for group in ("maps", "weight", "atomic"):
        for name in ra[group]:
            assert np.array_equal(ra[group][name], rb[group][name]), f"{group}/{name} differs"
    assert np.array_equal(ra["mask"], rb["mask"])
    pa, pb = ra["parameters"], rb["parameters"]
    assert pa["threshold"] == pb["threshold"]
    assert ra["response_ratios"] == rb["response_ratios"]


def test_resume_refuses_a_changed_parameter(tmp_path):
    from chemtomo.io.hspy import write_tilt_series

    write_tilt_series(tmp_path / "in", core_shell_series(n_slices=8, n_pixels=32))
    env = {**os.environ, "CHEMTOMO_SCHEDULER": ""}
    cmd = command(tmp_path / "in", tmp_path / "s.zarr", tmp_path / "r.h5")
    cmd[cmd.index("-n") + 1] = "5"
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=300).returncode == 0
    cmd[cmd.index("-n") + 1] = "6"
    proc = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "parameter n_iter: 5 -> 6" in proc.stderr and "cannot be reused" in proc.stderr
