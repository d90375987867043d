"""`chemtomo reconstruct --haadf STACK` with no --eds: the HAADF volume into result.h5 (/haadf)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from chemtomo.geometry import TiltGeometry, columns_to_sinogram, volume_to_columns
from chemtomo.io import read_result
from chemtomo.io.hspy import to_signal
from chemtomo.projector import make_operator
from test_cli import chemtomo

PIXEL_NM = 1.5


@pytest.fixture(scope="module")
def haadf_stack(tmp_path_factory):
    """A HAADF stack (11 tilts, 3 slices, 24 pixels of 1.5 nm) as .hspy, and its data."""
    folder = tmp_path_factory.mktemp("haadf")
    angles = np.arange(-50.0, 50.1, 10.0)
    n = 24
    g = TiltGeometry(angles, n, PIXEL_NM)
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    vol = np.stack([(np.hypot(yy, xx - 2) < 7 + i) * 3.0 for i in range(3)]).astype(np.float32)
    stack = columns_to_sinogram(make_operator(g).forward(volume_to_columns(vol)), g.n_tilts, n).astype(np.float32)
    to_signal(stack, angles, PIXEL_NM, "HAADF").save(folder / "haadf.hspy", overwrite=True)
    return folder, stack, angles


@pytest.mark.parametrize("method", ["sirt", "tv"])
def test_cli_haadf_only_writes_haadf_volume(haadf_stack, tmp_path, method):
    folder, stack, _ = haadf_stack
    out = tmp_path / "r.h5"
    proc = chemtomo("reconstruct", "--haadf", str(folder / "haadf.hspy"), "--method", method, "-n", "30",
                    "--out", str(out), "--quiet")
    assert f"haadf_{method}: HAADF volume 3 x 24 x 24" in proc.stderr
    res = read_result(out)
    assert res["haadf"].shape == (3, 24, 24)
    assert res["pixel_nm"] == pytest.approx(PIXEL_NM)
    assert res["maps"] == {} and res["mask"] is None
    assert res["parameters"]["method"] == f"haadf_{method}" and res["parameters"]["n_iter"] == 30
    with h5py.File(out) as f:
        assert f["haadf"].attrs["kind"] == "haadf" and f["haadf"].attrs["pixel_nm"] == pytest.approx(PIXEL_NM)
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == [f"haadf_{method}_haadf.tif"]
    assert float(res["haadf"].max()) > 0


def test_cli_haadf_only_matches_the_api(haadf_stack, tmp_path):
    from chemtomo.pipeline import reconstruct_haadf
    from chemtomo.tiltseries import TiltSeries

    folder, stack, angles = haadf_stack
    chemtomo("reconstruct", "--haadf", str(folder / "haadf.hspy"), "--out", str(tmp_path), "--export", "none",
             "--quiet")
    api = reconstruct_haadf(TiltSeries(angles, PIXEL_NM, {}, stack), "sirt")
    np.testing.assert_allclose(read_result(tmp_path / "result.h5")["haadf"], api.haadf_volume, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("extra", "message"), [
    (["--mask", "otsu"], "--mask"),
    (["--factors", "paper"], "--factors"),
    (["--alpha", "0.5"], "--alpha"),
    (["--method", "hebt_sirt"], "'sirt' or 'tv'"),
    (["--export-kinds", "maps"], "--export-kinds haadf"),
])
def test_cli_haadf_only_refuses_eds_options(haadf_stack, tmp_path, extra, message):
    folder, _, _ = haadf_stack
    proc = chemtomo("reconstruct", "--haadf", str(folder / "haadf.hspy"), "--out", str(tmp_path / "out"), "--quiet",
                    *extra, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
