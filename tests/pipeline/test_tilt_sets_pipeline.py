"""A series whose HAADF has tilts of its own through the volume path (issue 16).

Chunking, the resumable store, the result file and the stack files keep every bit;
a run of a shared series is unchanged by the per-modality machinery.
"""

from __future__ import annotations

import numpy as np
import pytest

from chemtomo.geometry import TiltGeometry, columns_to_sinogram, volume_to_columns
from chemtomo.physics import paper_table2
from chemtomo.pipeline import reconstruct_series
from chemtomo.pipeline.store import StoreMismatchError, VolumeStore
from chemtomo.projector import make_operator
from chemtomo.tiltseries import TiltSeries

LINES = ["Ag_La", "Au_Ma"]
E_ANGLES = np.arange(-60.0, 60.1, 20.0)  # 7
H_ANGLES = np.arange(-60.0, 60.1, 4.0)  # 31, the EDS's among them


def tilt_set_series(n_slices=6, n_pixels=24, seed=0, h_angles=H_ANGLES) -> TiltSeries:
    """Core (Ag_La) - shell (Au_Ma) slices; EDS at 7 tilts (Poisson), HAADF at its own (Poisson)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n_pixels, :n_pixels] - (n_pixels - 1) / 2
    r = np.hypot(yy, xx)
    vol = np.zeros((2, n_slices, n_pixels, n_pixels), np.float32)
    for s, scale in enumerate(np.linspace(0.7, 1.0, n_slices)):
        vol[0, s] = r < 0.17 * n_pixels * scale
        vol[1, s] = (r >= 0.17 * n_pixels * scale) & (r < 0.34 * n_pixels * scale)

    def project(angles, v):
        g = TiltGeometry(angles, n_pixels, 1.0)
        return columns_to_sinogram(make_operator(g).forward(volume_to_columns(v)), g.n_tilts, n_pixels)

    eds = {ln: rng.poisson(project(E_ANGLES, vol[i] * (4.0 + 3 * i))).astype(np.float32)
           for i, ln in enumerate(LINES)}
    haadf = rng.poisson(5 * project(h_angles, vol[0] * 4.0) + 9 * project(h_angles, vol[1] * 7.0) + 1)
    return TiltSeries(E_ANGLES, 1.0, eds, haadf.astype(np.float32), haadf_angles_deg=h_angles)


@pytest.fixture(scope="module")
def series():
    return tilt_set_series()


@pytest.fixture(scope="module")
def factors():
    return paper_table2()


RUNS = {"hebt_sirt": {"n_iter": 15}, "fused_tv": {"n_iter": 12}}


@pytest.fixture(scope="module")
def whole(series, factors):
    return {m: reconstruct_series(series, factors, m, p, chunk_slices=None) for m, p in RUNS.items()}


@pytest.mark.parametrize("method", sorted(RUNS))
def test_chunks_give_the_same_bits(series, factors, whole, method):
    ref = whole[method]
    out = reconstruct_series(series, factors, method, RUNS[method], chunk_slices=4)
    np.testing.assert_array_equal(np.asarray(out.maps), np.asarray(ref.maps))
    np.testing.assert_array_equal(out.composition.weight, ref.composition.weight)
    np.testing.assert_array_equal(out.haadf_volume, ref.haadf_volume)
    assert ref.parameters["haadf_geometry"]["angles_deg"] == H_ANGLES.tolist()
    assert ref.parameters["geometry"]["angles_deg"] == E_ANGLES.tolist()
    assert "7 tilt(s) both modalities share" in ref.response_ratios.basis
    assert np.all(np.isfinite(np.asarray(ref.maps)))


def test_store_and_resume_give_the_same_bits(series, factors, whole, tmp_path):
    store = tmp_path / "run.zarr"
    out = reconstruct_series(series, factors, "hebt_sirt", RUNS["hebt_sirt"], chunk_slices=2, store=store)
    np.testing.assert_array_equal(np.asarray(out.maps), np.asarray(whole["hebt_sirt"].maps))
    weight = np.array(out.composition.weight)  # the store's (float32) fractions, before the damage
    vs = VolumeStore.read(store)
    vs.forget([1])  # as a run killed before its second chunk was recorded
    vs.close()
    again = reconstruct_series(series, factors, "hebt_sirt", RUNS["hebt_sirt"], chunk_slices=2, store=store,
                               resume=True)
    np.testing.assert_array_equal(np.asarray(again.maps), np.asarray(whole["hebt_sirt"].maps))
    np.testing.assert_array_equal(np.asarray(again.composition.weight), weight)
    # the HAADF's tilts are in the fingerprint: another HAADF tilt set does not resume this store
    other = tilt_set_series(h_angles=np.arange(-60.0, 60.1, 5.0))
    with pytest.raises(StoreMismatchError, match="haadf"):
        reconstruct_series(other, factors, "hebt_sirt", RUNS["hebt_sirt"], chunk_slices=2, store=store, resume=True)


def test_result_file_keeps_the_haadf_angles(series, whole, tmp_path):
    from chemtomo.io import read_result, write_result

    ref = whole["fused_tv"]
    path = write_result(tmp_path / "r.h5", ref)
    back = read_result(path)
    np.testing.assert_array_equal(back["haadf_angles_deg"], H_ANGLES)
    assert "share" in back["response_ratio_basis"]
    for i, ln in enumerate(ref.lines):
        np.testing.assert_array_equal(back["maps"][ln], np.asarray(ref.maps[i]))
    np.testing.assert_array_equal(back["haadf"], ref.haadf_volume)


def test_shared_series_result_file_has_no_haadf_angles(factors, tmp_path):
    from chemtomo.io import read_result, write_result

    s = tilt_set_series(h_angles=E_ANGLES)
    assert s.shares_angles
    from chemtomo.reconstruct.hebt import BASIS_ALL_TILTS, EIV_NOTE

    out = reconstruct_series(s, factors, "hebt_sirt", {"n_iter": 5})
    # every tilt's data, corrected for the EDS noise (the series are counts): no tilt set of the HAADF's own
    assert "haadf_geometry" not in out.parameters and out.response_ratios.basis == BASIS_ALL_TILTS + EIV_NOTE
    back = read_result(write_result(tmp_path / "r.h5", out))
    assert back["haadf_angles_deg"] is None and back["response_ratio_basis"] == BASIS_ALL_TILTS + EIV_NOTE


def test_stack_files_round_trip_bit_for_bit(series, tmp_path):
    from chemtomo.io.hspy import read_tilt_series, write_tilt_series

    paths = write_tilt_series(tmp_path / "in", series)
    eds = {ln: paths[ln] for ln in LINES}
    back = read_tilt_series(eds, paths["HAADF"], haadf_angles_deg="file")
    np.testing.assert_array_equal(back.haadf_angles, series.haadf_angles)
    np.testing.assert_array_equal(back.angles_deg, series.angles_deg)
    np.testing.assert_array_equal(back.haadf, series.haadf)
    for ln in LINES:
        np.testing.assert_array_equal(back.eds[ln], series.eds[ln])
    given = read_tilt_series(eds, paths["HAADF"], haadf_angles_deg=H_ANGLES)
    np.testing.assert_array_equal(given.haadf_angles, H_ANGLES)
    with pytest.raises(ValueError, match="haadf-angles"):  # one tilt set asked: the files disagree, the fix named
        read_tilt_series(eds, paths["HAADF"])


def test_eds_only_method_runs_on_one_projector(series, factors):
    out = reconstruct_series(series, factors, "eds_sirt", {"n_iter": 5})
    assert out.haadf_volume.shape == (series.n_slices, 24, 24)  # the HAADF's SIRT at its own 31 tilts
    assert out.parameters["haadf_geometry"]["angles_deg"] == H_ANGLES.tolist()
    from chemtomo.pipeline.haadf import reconstruct_haadf

    alone = reconstruct_haadf(series, "sirt", n_iter=5)  # the HAADF-only path, at the HAADF's tilts too
    np.testing.assert_array_equal(alone.haadf_volume, out.haadf_volume)
    assert alone.parameters["geometry"]["angles_deg"] == H_ANGLES.tolist()


def test_bimodal_run_refuses_eds_beyond_the_haadf(factors):
    narrow = tilt_set_series(h_angles=np.arange(-40.0, 40.1, 4.0))
    with pytest.raises(ValueError, match="beyond the HAADF's range"):
        reconstruct_series(narrow, factors, "hebt_sirt", {"n_iter": 5})


@pytest.mark.parametrize("method", ["hebt_sirt", "fused_tv"])
def test_automatic_parameters_with_two_tilt_sets(series, factors, method):
    grid = {"hebt_sirt": {"alpha": (0.5, 0.8), "n": (10, 20)}, "fused_tv": {"mu": (0.17, 0.34, 0.68)}}[method]
    out = reconstruct_series(series, factors, method, {"n_iter": 10}, auto=True, auto_slices=2, auto_grid=grid)
    auto = out.parameters["auto"]
    assert len(auto["scores"]) == len(auto["grid"]) and np.all(np.isfinite(auto["scores"]))


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_bits(series, factors, whole):
    out = reconstruct_series(series, factors, "hebt_sirt", RUNS["hebt_sirt"], chunk_slices=2, scheduler="local:2")
    np.testing.assert_array_equal(np.asarray(out.maps), np.asarray(whole["hebt_sirt"].maps))


def test_cli_haadf_angles_from_the_stack_or_a_file(series, tmp_path, capsys):
    from chemtomo.cli import main
    from chemtomo.io import read_result
    from chemtomo.io.hspy import write_tilt_series

    paths = write_tilt_series(tmp_path / "in", series)
    (tmp_path / "haadf.tlt").write_text("\n".join(f"{a:g}" for a in H_ANGLES) + "\n")
    base = ["reconstruct", "--eds", f"Ag_La={paths['Ag_La']}", "--eds", f"Au_Ma={paths['Au_Ma']}",
            "--haadf", str(paths["HAADF"]), "--method", "hebt_sirt", "-n", "5", "--factors", "paper",
            "--export", "none", "--quiet"]
    for how, value in (("stack", "stack"), ("file", str(tmp_path / "haadf.tlt"))):
        assert main([*base, "--haadf-angles", value, "--out", str(tmp_path / how)]) == 0
        back = read_result(tmp_path / how / "result.h5")
        np.testing.assert_array_equal(back["haadf_angles_deg"], H_ANGLES)
    assert main([*base, "--out", str(tmp_path / "none")]) == 2  # one tilt set asked: refused, the fix named
    assert "--haadf-angles" in capsys.readouterr().err


def test_stack_files_with_a_finer_haadf_are_binned(series, tmp_path):
    from chemtomo.io.hspy import read_tilt_series, to_signal, write_tilt_series

    paths = write_tilt_series(tmp_path / "in", series)
    fine = np.repeat(np.repeat(series.haadf, 2, axis=1), 2, axis=2)  # each pixel as 2 x 2 of half the size
    to_signal(fine, series.haadf_angles, 0.5, "HAADF").save(tmp_path / "fine.hspy", overwrite=True)
    eds = {ln: paths[ln] for ln in LINES}
    back = read_tilt_series(eds, tmp_path / "fine.hspy", haadf_angles_deg="file")
    np.testing.assert_array_equal(back.haadf, series.haadf)  # the mean of four equal values
    assert back.metadata["haadf_binning"] == 2 and back.pixel_nm == 1.0
    to_signal(fine, series.haadf_angles, 0.7, "HAADF").save(tmp_path / "odd.hspy", overwrite=True)
    with pytest.raises(ValueError, match="not an integer"):
        read_tilt_series(eds, tmp_path / "odd.hspy", haadf_angles_deg="file")


@pytest.mark.parametrize("method, n_e, n_h, k, s", [("hebt_sirt", 7, 31, 2, 10), ("hebt_sirt", 11, 61, 3, 4),
                                                    ("fused_tv", 7, 31, 2, 5), ("eds_sirt", 7, 31, 2, 10)])
def test_chunk_bytes_bounds_the_measured_peak_with_two_geometries(method, n_e, n_h, k, s):
    """As tests/pipeline/test_distributed.py for one geometry: tracemalloc's peak of a chunk within the model."""
    import tracemalloc

    from chemtomo.pipeline import series_to_channel_data
    from chemtomo.pipeline.distributed import ChunkSpec, chunk_operator, reconstruct_chunk
    from chemtomo.pipeline.memory import chunk_bytes

    rng = np.random.default_rng(1)
    ge = TiltGeometry(np.linspace(-70, 70, n_e), 48, 1.0)
    gh = TiltGeometry(np.linspace(-75, 75, n_h), 48, 1.0)
    hk = None if method == "eds_sirt" else gh.key()  # as reconstruct_series: an EDS-only method has one projector
    spec = ChunkSpec(ge.key(), "batched", method, {"n_iter": 3}, haadf_geometry=hk)
    chunk_operator(ge.key(), "batched", None, hk)  # counted by operator_bytes
    ser = TiltSeries(ge.angles_deg, 1.0, {f"l{i}": rng.random((n_e, s, 48), dtype=np.float32) for i in range(k)},
                     rng.random((n_h, s, 48), dtype=np.float32), haadf_angles_deg=gh.angles_deg)
    data = series_to_channel_data(ser, [f"l{i}" for i in range(k)], r=np.ones(k))
    reconstruct_chunk(spec, data)  # compile outside the measurement
    tracemalloc.start()
    try:
        reconstruct_chunk(spec, data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    peak += data.eds.nbytes + data.haadf.nbytes
    est = chunk_bytes(ge, k, s, method, "batched", gh)
    assert 0.25 * est <= peak <= est, (peak, est)


def test_bootstrap_and_jackknife_keep_the_haadf_tilts(factors):
    """Replicas and the jackknife (an EDS tilt left out, the HAADF whole) run on a per-modality series."""
    from chemtomo.pipeline.uncertainty import bootstrap_uncertainty

    s = tilt_set_series(n_slices=3)
    u = bootstrap_uncertainty(s, factors, "hebt_sirt", {"n_iter": 5}, replicas=2, jackknife=True)
    for spread in (u.bootstrap, u.jackknife):
        assert spread.maps.se.shape == (2, 3, 24, 24) and np.all(np.isfinite(spread.maps.se))
    assert u.jackknife.maps.se.max() > 0  # the 7 leave-one-out runs differ
