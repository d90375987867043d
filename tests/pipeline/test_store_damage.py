"""A resumed store with a damaged chunk file (truncated, garbage, deleted) recomputes it and says so.

The maps, fractions and mask after the resume are bit-identical to an uninterrupted run;
the warning and the store's repairs name the chunk and the reason.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from chemtomo.physics import paper_table2
from chemtomo.pipeline import reconstruct_series
from chemtomo.pipeline.store import VolumeStore

sys.path.insert(0, str(Path(__file__).parent))
from test_distributed import LINES, core_shell_series  # noqa: E402

N_SLICES, CHUNK, N_ITER = 10, 3, 10  # chunks 0:3, 3:6, 6:9 and the short 9:10
ARRAYS = ("maps", "fractions/weight", "fractions/atomic", "mask")


@pytest.fixture(scope="module")
def series():
    return core_shell_series(n_slices=N_SLICES, n_pixels=32)


@pytest.fixture(scope="module")
def factors():
    return paper_table2(LINES)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, series, factors):
    """An uninterrupted run's store and its arrays."""
    path = tmp_path_factory.mktemp("ref") / "ref.zarr"
    reconstruct_series(series, factors, n_iter=N_ITER, store=path, chunk_slices=CHUNK)
    store = VolumeStore.read(path)
    return path, {name: np.asarray(store.group[name]) for name in ARRAYS}


def _truncate(f: Path) -> None:
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])


def _garbage(f: Path) -> None:
    f.write_bytes(np.random.default_rng(1).integers(0, 256, f.stat().st_size, dtype=np.uint8).tobytes())


def _delete(f: Path) -> None:
    f.unlink()


@pytest.mark.parametrize(("damage", "chunk", "reason"), [
    (_truncate, 1, "it cannot be read"),
    (_garbage, 3, "it cannot be read"),  # the short last chunk
    (_delete, 2, "its file(s) are missing"),
])
def test_damaged_chunk_is_recomputed_bit_for_bit(tmp_path, series, factors, reference, caplog, damage, chunk,
                                                  reason):
    ref_path, ref = reference
    path = tmp_path / "v.zarr"
    shutil.copytree(ref_path, path)
    store = VolumeStore.read(path)
    before = store.records()
    victim = store.chunk_files(chunk)[1]  # line 1's file of the chunk
    assert victim.is_file()
    damage(victim)
    a, b = store.chunks[chunk]

    with caplog.at_level(logging.WARNING, logger="chemtomo.pipeline"):
        res = reconstruct_series(series, factors, n_iter=N_ITER, store=path, resume=True)
    assert f"chunk {chunk} (slices {a}:{b}) is damaged: {reason}" in caplog.text
    assert f"recomputing chunk {chunk} (slices {a}:{b})" in caplog.text

    done = VolumeStore.read(path)
    assert done.result_info["status"] == "complete"
    assert done.verify() == (list(range(len(done.chunks))), [])
    (rep,) = done.repairs()
    assert rep["chunk"] == chunk and rep["slices"] == [a, b] and reason in rep["reason"]
    after = done.records()
    assert {i for i in after if after[i] != before[i]} == {chunk}  # only the damaged chunk was recomputed
    for name in ARRAYS:
        x = np.asarray(done.group[name])
        assert x.dtype == ref[name].dtype and np.array_equal(x, ref[name]), f"{name} differs"
    assert np.array_equal(np.asarray(res.maps), ref["maps"])

    caplog.clear()  # a further resume finds nothing wrong and recomputes nothing
    with caplog.at_level(logging.WARNING, logger="chemtomo.pipeline"):
        reconstruct_series(series, factors, n_iter=N_ITER, store=path, resume=True)
    assert "damaged" not in caplog.text
    assert VolumeStore.read(path).records() == after


def test_check_chunks_reports_without_raising(tmp_path, reference):
    ref_path, _ = reference
    path = tmp_path / "v.zarr"
    shutil.copytree(ref_path, path)
    store = VolumeStore.read(path)
    _truncate(store.chunk_files(0)[0])
    _delete(store.chunk_files(2)[1])
    good, bad = store.check_chunks()
    assert good == [1, 3]
    assert sorted(bad) == [0, 2]
    assert "cannot be read" in bad[0]
    assert "missing" in bad[2] and "maps/c/1/2/0/0" in bad[2]
