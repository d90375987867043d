"""The HDF5 result file and atomic writes."""

import numpy as np
import pytest

from chemtomo.geometry import TiltGeometry
from chemtomo.io import atomic_path, read_result, write_result
from chemtomo.physics import paper_table2
from chemtomo.pipeline import reconstruct_series
from chemtomo.tiltseries import TiltSeries


@pytest.fixture(scope="module")
def result():
    rng = np.random.default_rng(1)
    geom = TiltGeometry(np.arange(-60.0, 61.0, 15.0), 20, 2.0)
    y, x = np.mgrid[:20, :20] - 9.5
    disk = (x**2 + y**2 < 49).astype(np.float32)
    from chemtomo.geometry import columns_to_sinogram, volume_to_columns
    from chemtomo.projector import make_operator

    W = make_operator(geom)
    sino = columns_to_sinogram(W.forward(volume_to_columns(np.stack([disk, disk]))), geom.n_tilts, 20)
    series = TiltSeries(geom.angles_deg, 2.0, {"Ag_La": rng.poisson(30 * sino), "Au_Ma": rng.poisson(20 * sino)},
                        haadf=5000 * sino, metadata={})
    return reconstruct_series(series, paper_table2(), method="hebt_sirt", n_iter=30, alpha=0.5)


def test_result_round_trip(tmp_path, result):
    path = write_result(tmp_path / "r.h5", result, {"inputs": []})
    back = read_result(path)
    np.testing.assert_array_equal(back["maps"]["Ag_La"], result.maps[0])
    np.testing.assert_array_equal(back["weight"]["Au"], result.composition.weight[1].astype(np.float32))
    np.testing.assert_array_equal(back["mask"], result.composition.mask)
    assert back["r2"] == pytest.approx(result.response_ratios.r2)
    assert back["parameters"]["method"] == "hebt_sirt"
    assert back["maps"]["Ag_La"].shape == (2, 20, 20)


def test_failed_write_leaves_nothing(tmp_path, result, monkeypatch):
    import h5py

    calls = {"n": 0}
    real = h5py.Group.create_dataset

    def failing(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return real(self, *a, **k)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    with pytest.raises(OSError, match="disk full"):
        write_result(tmp_path / "r.h5", result)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("new, half")
            raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]


def test_read_result_rejects_other_files(tmp_path):
    import h5py

    with h5py.File(tmp_path / "o.h5", "w") as f:
        f["a"] = 1
    with pytest.raises(ValueError, match="not a chemtomo result"):
        read_result(tmp_path / "o.h5")
