"""The chunk runner and the resumable store.

Chunk results independent of chunking and of where they run, the store equal to the in-memory
pipeline bit for bit, fingerprints that refuse to mix runs, damaged chunks found and recomputed,
memory sizing checked against measurement.
"""

from __future__ import annotations

import json
import logging
import tracemalloc

import numpy as np
import pytest

from chemtomo.geometry import TiltGeometry, columns_to_sinogram, volume_to_columns
from chemtomo.physics import paper_table2
from chemtomo.pipeline import reconstruct_series, series_to_channel_data
from chemtomo.pipeline.distributed import (
    ChunkSpec,
    Runner,
    chunk_operator,
    reconstruct_chunk,
    resolve_scheduler,
)
from chemtomo.pipeline.memory import chunk_bytes, operator_bytes, plan_chunk_slices
from chemtomo.pipeline.store import (
    Fingerprint,
    StoreExistsError,
    StoreMismatchError,
    VolumeStore,
    array_sha256,
)
from chemtomo.pipeline.store_quantify import quantify_store
from chemtomo.projector import make_operator
from chemtomo.quantify import esf_threshold, quantify
from chemtomo.tiltseries import TiltSeries

LINES = ["Ag_La", "Au_Ma"]


def core_shell_series(n_slices=16, n_pixels=40, seed=0) -> TiltSeries:
    """A core (line 0) - shell (line 1) particle whose size changes along the tilt axis, Poisson counts."""
    rng = np.random.default_rng(seed)
    angles = np.arange(-60.0, 60.1, 10.0)
    g = TiltGeometry(angles, n_pixels, 1.0)
    W = make_operator(g)
    yy, xx = np.mgrid[:n_pixels, :n_pixels] - (n_pixels - 1) / 2
    r = np.hypot(yy, xx)
    vol = np.zeros((2, n_slices, n_pixels, n_pixels), np.float32)
    for s, scale in enumerate(np.linspace(0.6, 1.0, n_slices)):
        vol[0, s] = r < 0.17 * n_pixels * scale
        vol[1, s] = (r >= 0.17 * n_pixels * scale) & (r < 0.34 * n_pixels * scale)
    eds = {}
    for i, ln in enumerate(LINES):
        proj = W.forward(volume_to_columns(vol[i] * (4.0 + 3 * i)))
        eds[ln] = rng.poisson(columns_to_sinogram(proj, g.n_tilts, n_pixels)).astype(np.float32)
    haadf = rng.poisson(5 * eds["Ag_La"] + 9 * eds["Au_Ma"] + 1).astype(np.float32)
    return TiltSeries(angles, 1.0, eds, haadf)


@pytest.fixture(scope="module")
def series() -> TiltSeries:
    return core_shell_series()


@pytest.fixture(scope="module")
def factors():
    return paper_table2(LINES)


@pytest.fixture(scope="module")
def reference(series, factors):
    """The in-memory pipeline, all slices in one solve."""
    return reconstruct_series(series, factors, n_iter=15, chunk_slices=series.n_slices)


# -- the chunk task ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["batched", "sparse"])
@pytest.mark.parametrize("method", ["eds_sirt", "hebt_sirt"])
def test_chunk_result_does_not_depend_on_chunking(series, method, backend):
    g = series.geometry()
    spec = ChunkSpec(g.key(), backend, method, {"n_iter": 12})
    r = np.array([5.0, 9.0])
    n_slices = series.n_slices
    whole = reconstruct_chunk(spec, series_to_channel_data(series, LINES, 0, n_slices, r)).maps
    for size in (1, 3, 5):
        parts = [reconstruct_chunk(spec, series_to_channel_data(series, LINES, a, min(a + size, n_slices), r)).maps
                 for a in range(0, n_slices, size)]
        assert np.array_equal(np.concatenate(parts, axis=1), whole), f"chunks of {size} slices differ"


@pytest.mark.parametrize("backend", ["batched", "sparse"])
def test_chunk_result_does_not_depend_on_threads(series, backend):
    """The batched engine runs column blocks on numba threads: one thread or all, the same bits."""
    import numba

    g = series.geometry()
    data = series_to_channel_data(series, LINES, 0, 16, np.array([5.0, 9.0]))
    one = reconstruct_chunk(ChunkSpec(g.key(), backend, "hebt_sirt", {"n_iter": 10}, threads=1), data).maps
    all_ = reconstruct_chunk(ChunkSpec(g.key(), backend, "hebt_sirt", {"n_iter": 10}, threads=None), data).maps
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS  # the limit was undone
    assert np.array_equal(one, all_)


# -- the store against the in-memory pipeline ---------------------------------------------------


def test_store_equals_in_memory_pipeline(tmp_path, series, factors, reference):
    res = reconstruct_series(series, factors, n_iter=15, store=tmp_path / "v.zarr", chunk_slices=3)
    assert np.array_equal(np.asarray(res.maps), reference.maps)
    ca, cb = reference.composition, res.composition
    assert cb.threshold.as_dict() == ca.threshold.as_dict()
    assert np.array_equal(np.asarray(cb.mask), ca.mask)
    assert np.array_equal(np.asarray(cb.weight).astype(np.float32), ca.weight.astype(np.float32))
    assert np.array_equal(np.asarray(cb.atomic).astype(np.float32), ca.atomic.astype(np.float32))
    store = VolumeStore.read(tmp_path / "v.zarr")
    assert store.result_info["status"] == "complete"
    assert [tuple(r.slices) for r in store.records().values()] == store.chunks
    assert len(store.chunks) == 6 and all(r.factor == "z" for r in store.records().values())


@pytest.mark.parametrize("mask_method, threshold", [("otsu", None), ("multiotsu", None), ("esf", 2e-5)])
def test_store_quantification_other_masks(tmp_path, series, factors, reference, mask_method, threshold):
    res = reconstruct_series(series, factors, n_iter=15, store=tmp_path / "v.zarr", chunk_slices=5,
                             mask_method=mask_method, threshold=threshold)
    q = factors.z(LINES)
    want = quantify(reference.maps, q, factors.atomic_weights(LINES), LINES, ["Ag", "Au"], mask_method, threshold)
    assert res.composition.threshold.as_dict() == want.threshold.as_dict()
    assert np.array_equal(np.asarray(res.composition.mask), want.mask)


def _store_of(path, maps: np.ndarray, chunk_slices: int) -> VolumeStore:
    """A store holding ``maps`` (k, s, n, n) float32, written chunk by chunk (no reconstruction)."""
    k, s, n, _ = maps.shape
    store = VolumeStore.open(path, Fingerprint({"test": "maps given"}, {}), lines=LINES[:k], n_slices=s, n_grid=n,
                             chunk_slices=chunk_slices, resume=False)
    for i, (a, b) in enumerate(store.chunks):
        store.write_chunk(i, maps[:, a:b], factor="f")
    return store


@pytest.mark.parametrize("chunk_slices", [1, 5, 32])
def test_store_multiotsu_equals_in_memory_on_a_supported_particle(tmp_path, chunk_slices):
    """Chunked three-class Otsu = the in-memory one = scikit-image's on the whole volume, bit for bit.

    The volume: background 0, a light support 1 and a heavy particle 5 (noise rms 0.2) split
    over two lines; the threshold must keep the support (support + particle: 23.5 % of the
    volume, within 0.01; the test of the mask itself is in tests/test_quantify.py).
    """
    from skimage.filters import threshold_multiotsu

    n = 32
    z, y, x = np.mgrid[:n, :n, :n]
    levels = np.zeros((n, n, n))
    levels[(z >= 4) & (z < 12) & (y >= 2) & (y < 30) & (x >= 2) & (x < 30)] = 1.0
    levels[(z - 19) ** 2 + (y - 16) ** 2 + (x - 16) ** 2 <= 7**2] = 5.0
    signal = levels + np.random.default_rng(0).normal(0.0, 0.2, levels.shape)
    maps = np.stack([0.3 * signal, 0.7 * signal]).astype(np.float32)
    q, aw = np.array([1.0, 2.0]), np.array([107.87, 196.97])
    store = _store_of(tmp_path / "v.zarr", maps, chunk_slices)
    try:
        th = quantify_store(store, q, aw, ["Ag", "Au"], "multiotsu")
        mask = np.asarray(store.group["mask"]).astype(bool)
    finally:
        store.close()
    want = quantify(maps, q, aw, LINES, ["Ag", "Au"], "multiotsu")
    total = np.tensordot(1.0 / q, maps.astype(np.float64), axes=1)
    assert th.as_dict() == want.threshold.as_dict() and th.method == "multiotsu"
    assert th.value == float(threshold_multiotsu(total, classes=3)[0])
    assert np.array_equal(mask, want.mask)
    assert abs(th.volume_fraction - float(np.mean(levels > 0))) <= 0.01


def test_store_multiotsu_falls_back_to_otsu_as_in_memory(tmp_path):
    """Two values in the volume (three classes cannot be formed): both paths take two-class Otsu, method "otsu"."""
    maps = np.zeros((2, 6, 8, 8), np.float32)
    maps[:, 1:5, 2:6, 2:6] = 3.0
    q, aw = np.array([1.0, 2.0]), np.array([107.87, 196.97])
    store = _store_of(tmp_path / "v.zarr", maps, 4)
    try:
        th = quantify_store(store, q, aw, ["Ag", "Au"], "multiotsu")
    finally:
        store.close()
    want = quantify(maps, q, aw, LINES, ["Ag", "Au"], "multiotsu").threshold
    assert th.as_dict() == want.as_dict() and th.method == "otsu"
    assert th.volume_fraction == pytest.approx(64 / 384)


def test_store_esf_subsample_is_the_same_sample(tmp_path, series, factors, monkeypatch):
    """Volumes larger than esf_threshold's max_voxels: the chunked pass gathers the very voxels it samples."""
    # Otsu, not a given threshold above the signal (an empty mask, now refused), to skip the ESF here
    res = reconstruct_series(series, factors, n_iter=8, store=tmp_path / "v.zarr", chunk_slices=4,
                             mask_method="otsu")
    store = VolumeStore.read(tmp_path / "v.zarr")
    q = factors.z(LINES)
    total = np.tensordot(1.0 / q, np.asarray(res.maps, dtype=np.float64), axes=1)
    monkeypatch.setattr("chemtomo.quantify.ESF_MAX_VOXELS", 5000)  # the sampling's one home
    monkeypatch.setattr("chemtomo.quantify.ESF_SEED", 3)
    th = quantify_store(store, q, factors.atomic_weights(LINES), ["Ag", "Au"], "esf")
    want = esf_threshold(total, max_voxels=5000, seed=3)
    assert th.value == want.value
    assert th.volume_fraction == float(np.count_nonzero(total > th.value)) / total.size


def test_write_result_from_store(tmp_path, series, factors, reference):
    from chemtomo.io import read_result, write_result

    res = reconstruct_series(series, factors, n_iter=15, store=tmp_path / "v.zarr", chunk_slices=4)
    a = read_result(write_result(tmp_path / "a.h5", reference))
    b = read_result(write_result(tmp_path / "b.h5", res))
    for group in ("maps", "weight", "atomic"):
        for name in a[group]:
            assert np.array_equal(a[group][name], b[group][name])
    assert np.array_equal(a["mask"], b["mask"])


# -- resume, fingerprints, damage ----------------------------------------------------------------


def test_resume_complete_store_recomputes_nothing(tmp_path, series, factors, reference):
    path = tmp_path / "v.zarr"
    reconstruct_series(series, factors, n_iter=15, store=path, chunk_slices=4)
    before = VolumeStore.read(path).records()
    res = reconstruct_series(series, factors, n_iter=15, store=path, resume=True)  # chunking from the store
    assert VolumeStore.read(path).records() == before
    assert np.array_equal(np.asarray(res.maps), reference.maps)


def test_existing_store_needs_resume(tmp_path, series, factors):
    path = tmp_path / "v.zarr"
    reconstruct_series(series, factors, n_iter=3, store=path, chunk_slices=8)
    with pytest.raises(StoreExistsError, match="already exists: resume it"):
        reconstruct_series(series, factors, n_iter=3, store=path)


def test_changed_parameter_or_input_is_refused(tmp_path, series, factors):
    path = tmp_path / "v.zarr"
    reconstruct_series(series, factors, n_iter=3, store=path, chunk_slices=8)
    with pytest.raises(StoreMismatchError, match=r"parameter n_iter: 3 -> 4") as err:
        reconstruct_series(series, factors, n_iter=4, store=path, resume=True)
    assert "remove" in str(err.value)
    with pytest.raises(StoreMismatchError, match=r"parameter alpha: 0.8 -> 0.7"):
        reconstruct_series(series, factors, n_iter=3, alpha=0.7, store=path, resume=True)
    changed = TiltSeries(series.angles_deg, series.pixel_nm, {**series.eds}, series.haadf)
    au = changed.eds["Au_Ma"].copy()
    au[3, 2, 10] += 1
    changed.eds["Au_Ma"] = au
    with pytest.raises(StoreMismatchError, match=r"input eds Au_Ma: data differ"):
        reconstruct_series(changed, factors, n_iter=3, store=path, resume=True)
    with pytest.raises(StoreMismatchError, match="chunks of 8 slices, not 4"):
        reconstruct_series(series, factors, n_iter=3, store=path, resume=True, chunk_slices=4)
    with pytest.raises(StoreMismatchError, match=r"parameter filter_sigma: 0.8 -> 0.5"):
        reconstruct_series(series, factors, n_iter=3, store=path, resume=True, filter_sigma=0.5)


def test_damaged_chunk_is_found_and_recomputed(tmp_path, series, factors, reference, caplog):
    path = tmp_path / "v.zarr"
    reconstruct_series(series, factors, n_iter=15, store=path, chunk_slices=4)
    store = VolumeStore.read(path)
    store.maps[1, 5, 3, 3] = 123.0  # chunk 1 (slices 4:8)
    assert store.verify() == ([0, 2, 3], [1])
    with caplog.at_level(logging.WARNING, logger="chemtomo.pipeline"):
        res = reconstruct_series(series, factors, n_iter=15, store=path, resume=True)
    assert "chunk(s) [1] do not match their checksums" in caplog.text
    assert np.array_equal(np.asarray(res.maps), reference.maps)
    assert VolumeStore.read(path).verify() == ([0, 1, 2, 3], [])


def test_not_a_store(tmp_path, series, factors):
    (tmp_path / "x").mkdir()
    with pytest.raises(ValueError, match="not a"):
        reconstruct_series(series, factors, n_iter=3, store=tmp_path / "x", resume=True)


def test_array_sha256_sees_shape_dtype_and_bytes():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert array_sha256(a) == array_sha256(a.copy())
    assert array_sha256(a) != array_sha256(a.reshape(4, 3))
    assert array_sha256(a) != array_sha256(a.astype(np.float64))
    assert array_sha256(a[:, ::2]) == array_sha256(np.ascontiguousarray(a[:, ::2]))


# -- memory --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sparse", "batched"])
@pytest.mark.parametrize("method, n_tilts, n_pixels, k, s", [
    ("hebt_sirt", 31, 48, 5, 10), ("eds_sirt", 11, 64, 2, 10), ("hebt_sirt", 61, 32, 2, 10),
    ("eds_sirt", 61, 64, 2, 12), ("hebt_sirt", 31, 40, 3, 1), ("eds_sirt", 31, 40, 3, 11),
    ("ls_tv", 31, 40, 2, 6), ("poisson_tv", 61, 32, 3, 4), ("fused_tv", 31, 48, 2, 5), ("fused_tv", 15, 40, 5, 1)])
def test_chunk_bytes_bounds_the_measured_peak(backend, method, n_tilts, n_pixels, k, s):
    rng = np.random.default_rng(1)
    g = TiltGeometry(np.linspace(-75, 75, n_tilts), n_pixels, 1.0)
    spec = ChunkSpec(g.key(), backend, method, {"n_iter": 3})
    chunk_operator(g.key(), backend)  # built outside the measurement: it is counted by operator_bytes
    data = series_to_channel_data(
        TiltSeries(g.angles_deg, 1.0, {f"l{i}": rng.random((n_tilts, s, n_pixels), dtype=np.float32) for i in range(k)},
                   rng.random((n_tilts, s, n_pixels), dtype=np.float32)),
        [f"l{i}" for i in range(k)], r=np.ones(k))
    # once outside the measurement: a cold numba cache compiles kernels on the first call, and
    # the compiler's Python allocations are not the solve's working set
    reconstruct_chunk(spec, data)
    tracemalloc.start()
    try:
        reconstruct_chunk(spec, data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    peak += data.eds.nbytes + data.haadf.nbytes  # the task's input
    est = chunk_bytes(g, k, s, method, backend)
    assert peak <= est, f"measured {peak / 1e6:.2f} MB > estimate {est / 1e6:.2f} MB"
    assert peak >= 0.25 * est, f"estimate {est / 1e6:.2f} MB is far above the measured {peak / 1e6:.2f} MB"


@pytest.mark.parametrize("backend", ["sparse", "batched"])
def test_operator_bytes_estimate(backend):
    g = TiltGeometry(np.arange(-75.0, 75.1, 5.0), 96, 1.0)
    W = make_operator(g, backend)
    actual = 2 * (W.A.data.nbytes + W.A.indices.nbytes + W.A.indptr.nbytes) if backend == "sparse" else W.matrix_bytes
    assert 0.6 * operator_bytes(g, backend) <= actual <= 1.1 * operator_bytes(g, backend)


def test_plan_chunk_slices():
    g = TiltGeometry(np.arange(-75.0, 75.1, 5.0), 64, 1.0)
    per = chunk_bytes(g, 3, 2, "hebt_sirt") - chunk_bytes(g, 3, 1, "hebt_sirt")
    budget = operator_bytes(g) + chunk_bytes(g, 3, 10, "hebt_sirt")
    c = plan_chunk_slices(g, 3, 1000, "hebt_sirt", budget)
    assert c == 10 and chunk_bytes(g, 3, c, "hebt_sirt") + operator_bytes(g) <= budget
    assert plan_chunk_slices(g, 3, 1000, "hebt_sirt", budget + per - 1) == 10
    assert plan_chunk_slices(g, 3, 40, "hebt_sirt", 1e12, min_chunks=8) == 5
    assert plan_chunk_slices(g, 3, 7, "hebt_sirt", 1e12) == 7
    with pytest.raises(MemoryError, match="one slice of 3 lines"):
        plan_chunk_slices(g, 3, 100, "hebt_sirt", operator_bytes(g))
    # a prior across slices solves a halo on each side: the budget of 10 slices holds 10 - 2 * 2
    assert plan_chunk_slices(g, 3, 1000, "fused_huber", operator_bytes(g) + chunk_bytes(g, 3, 10, "fused_huber"),
                             halo_slices=2) == 6
    with pytest.raises(MemoryError, match="with 4 context slices on each side"):
        plan_chunk_slices(g, 3, 100, "fused_huber", operator_bytes(g) + chunk_bytes(g, 3, 8, "fused_huber"),
                          halo_slices=4)
    with pytest.raises(ValueError, match="halo_slices"):
        plan_chunk_slices(g, 3, 100, "hebt_sirt", 1e12, halo_slices=-1)
    # two chunks at once on threads share the projector: the largest chunk of which two fit beside it
    c2 = plan_chunk_slices(g, 3, 1000, "hebt_sirt", budget, slots=2)
    assert operator_bytes(g) + 2 * chunk_bytes(g, 3, c2, "hebt_sirt") <= budget
    assert operator_bytes(g) + 2 * chunk_bytes(g, 3, c2 + 1, "hebt_sirt") > budget and 2 <= c2 <= 5
    with pytest.raises(MemoryError, match="for each of 2 chunks at once"):
        plan_chunk_slices(g, 3, 100, "hebt_sirt", operator_bytes(g) + chunk_bytes(g, 3, 1, "hebt_sirt"), slots=2)
    with pytest.raises(ValueError, match="slots"):
        plan_chunk_slices(g, 3, 100, "hebt_sirt", 1e12, slots=0)


def test_in_process_runner_shares_its_budget_between_chunks_at_once(monkeypatch):
    """In process, two chunks at once share the budget; a budget of one slice runs them one at a time."""
    import chemtomo.projector as proj

    g = TiltGeometry(np.arange(-75.0, 75.1, 5.0), 64, 1.0)
    monkeypatch.setattr(proj, "concurrent_workers", lambda n_tasks=None: 2)
    budget = operator_bytes(g) + chunk_bytes(g, 3, 10, "hebt_sirt")
    c2 = plan_chunk_slices(g, 3, 1000, "hebt_sirt", budget, slots=2)
    with Runner(None, memory_budget_bytes=budget) as runner:
        assert runner.plan_chunk(g, 3, 1000, "hebt_sirt", "batched") == c2 and runner.slots == 2
    with Runner(None, memory_budget_bytes=operator_bytes(g) + chunk_bytes(g, 3, 1, "hebt_sirt")) as runner:
        assert runner.plan_chunk(g, 3, 1000, "hebt_sirt", "batched") == 1 and runner.slots == 1
        assert runner.describe() == "in process"


def test_memory_budget_sizes_the_chunks(tmp_path, series, factors, reference):
    g = series.geometry()
    budget_gb = (operator_bytes(g) + chunk_bytes(g, 2, 5, "hebt_sirt")) / 2**30
    res = reconstruct_series(series, factors, n_iter=15, store=tmp_path / "v.zarr", memory_budget_gb=budget_gb)
    assert res.parameters["chunk_slices"] == 2  # 8 chunks at least for a store; 5 slices would fit
    assert np.array_equal(np.asarray(res.maps), reference.maps)


# -- where chunks run ---------------------------------------------------------------------------


def test_resolve_scheduler(monkeypatch):
    monkeypatch.delenv("CHEMTOMO_SCHEDULER", raising=False)
    assert resolve_scheduler(None) == ("inprocess", None)
    assert resolve_scheduler("local") == ("local", None)
    assert resolve_scheduler("local:3") == ("local", 3)
    assert resolve_scheduler("tcp://10.0.0.1:8786") == ("address", "tcp://10.0.0.1:8786")
    assert resolve_scheduler("sync") == ("inprocess", None)
    monkeypatch.setenv("CHEMTOMO_SCHEDULER", "tcp://head:8786")
    assert resolve_scheduler(None) == ("address", "tcp://head:8786")
    assert resolve_scheduler("inprocess") == ("inprocess", None)
    with pytest.raises(ValueError, match="positive number of workers"):
        resolve_scheduler("local:0")


@pytest.mark.parametrize("method", ["eds_sirt", "fused_tv"])
def test_in_process_chunks_two_at_once_equal_one_solve(series, factors, monkeypatch, method):
    """In process, chunks run two at once on threads (each with its share of numba's threads): the bits of one solve."""
    import threading

    import chemtomo.pipeline.distributed as dist
    import chemtomo.projector as proj

    params = {"n_iter": 15} if method == "eds_sirt" else {"n_iter": 20, "mu": 0.1}
    one = reconstruct_series(series, factors, method=method, params=params, chunk_slices=series.n_slices)
    names = []

    def chunk(spec, data):
        names.append(threading.current_thread().name)
        return reconstruct_chunk(spec, data)

    monkeypatch.setattr(proj, "concurrent_workers", lambda n_tasks=None: 2)
    monkeypatch.setattr(dist, "reconstruct_chunk", chunk)
    res = reconstruct_series(series, factors, method=method, params=params, chunk_slices=3)
    assert np.array_equal(res.maps, one.maps) and np.array_equal(res.composition.mask, one.composition.mask)
    # 6 chunks, and the HAADF volume's 6
    assert len(names) == 12 and all(n.startswith("chemtomo-worker") for n in names)
    assert res.parameters["scheduler"] == "in process (2 chunks at once)"


def test_local_cluster_equals_in_process(tmp_path, series, factors, reference):
    """One LocalCluster run (start-up costs seconds): same bits as in process, chunks from two workers."""
    res = reconstruct_series(series, factors, n_iter=15, store=tmp_path / "v.zarr", chunk_slices=2,
                             scheduler="local:2", memory_budget_gb=1.0)
    assert np.array_equal(np.asarray(res.maps), reference.maps)
    assert np.array_equal(np.asarray(res.composition.mask), reference.composition.mask)
    pids = {r.pid for r in VolumeStore.read(tmp_path / "v.zarr").records().values()}
    assert len(pids) == 2 and res.parameters["scheduler"] == "LocalCluster of 2 workers"


def test_existing_cluster_from_environment(tmp_path, series, factors, reference, monkeypatch):
    """``CHEMTOMO_SCHEDULER`` names an existing cluster: chunks run there, the cluster is left running."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0",
                      memory_limit="2GiB") as cluster:
        monkeypatch.setenv("CHEMTOMO_SCHEDULER", cluster.scheduler_address)
        res = reconstruct_series(series, factors, n_iter=15, store=tmp_path / "v.zarr", chunk_slices=4)
        assert np.array_equal(np.asarray(res.maps), reference.maps)
        assert res.parameters["scheduler"].startswith(f"Dask cluster {cluster.scheduler_address}")
        with Client(cluster) as client:  # still up
            assert len(client.scheduler_info()["workers"]) == 1


@pytest.mark.slow
def test_worker_killed_mid_chunk_is_recovered():
    """A LocalCluster worker SIGKILLed mid-run: its chunks (and their scattered input) are resubmitted."""
    import os
    import signal
    import threading

    from chemtomo.reconstruct import ChannelData

    g = TiltGeometry(np.arange(-75.0, 75.1, 5.0), 96, 1.0)
    rng = np.random.default_rng(0)
    k, n = 3, 48
    eds, haadf = rng.random((k, g.n_rays, n), dtype=np.float32), rng.random((g.n_rays, n), dtype=np.float32)
    spec = ChunkSpec(g.key(), "batched", "hebt_sirt", {"n_iter": 300})

    def make(a, b):
        return ChannelData([f"l{i}" for i in range(k)], eds[:, :, a:b].copy(), haadf[:, a:b].copy(), np.ones(k))

    want = reconstruct_chunk(spec, make(0, n)).maps
    done = {}
    with Runner("local:2", memory_budget_bytes=2 * 2**30) as runner:
        victim = next(iter(runner.client.run(os.getpid).values()))
        started = threading.Event()

        def on_done(i, a, b, out):
            done[i] = out
            if not started.is_set():  # the first chunk is back: the others are running or queued
                started.set()
                os.kill(victim, signal.SIGKILL)

        runner.run(spec, [(i, a, a + 6) for i, a in enumerate(range(0, n, 6))], make, on_done)
    assert sorted(done) == list(range(8))
    assert np.array_equal(np.concatenate([done[i].maps for i in range(8)], axis=1), want)


def test_store_has_one_writer(tmp_path, series, factors):
    """A live writer's lock refuses a second run; a dead writer's lock (a kill) is taken over."""
    import socket
    import subprocess
    import sys

    path = tmp_path / "v.zarr"
    reconstruct_series(series, factors, n_iter=3, store=path, chunk_slices=8)
    assert not (path / "chemtomo.lock").exists()  # released at the end
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (path / "chemtomo.lock").write_text(json.dumps({"host": socket.gethostname(), "pid": sleeper.pid}))
        with pytest.raises(StoreExistsError, match=f"being written by pid {sleeper.pid}"):
            reconstruct_series(series, factors, n_iter=3, store=path, resume=True)
    finally:
        sleeper.kill()
        sleeper.wait()
    reconstruct_series(series, factors, n_iter=3, store=path, resume=True)  # the dead pid's lock is stale
    assert not (path / "chemtomo.lock").exists()


def test_keep_operator_keeps_the_projector_across_runs_and_releases_it_at_the_end():
    """Inside ``keep_operator`` a run's end does not drop the cached projector; the block's end does."""
    from chemtomo.pipeline import distributed as d

    g = TiltGeometry(np.arange(-60.0, 61.0, 30.0), 8, 1.0)
    d.release_operator()
    with d.keep_operator():
        op = d.chunk_operator(g.key(), "batched")
        d.release_operator()  # what a run does when it ends
        assert d.chunk_operator(g.key(), "batched") is op
        with d.keep_operator():  # nested: the inner end keeps it too
            pass
        assert d.chunk_operator(g.key(), "batched") is op
    assert not d._OP_CACHE
    op2 = d.chunk_operator(g.key(), "batched")
    d.release_operator()
    assert not d._OP_CACHE and op2 is not op
