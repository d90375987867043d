"""HAADF-only reconstruction (SIRT and TV through the engine) and the HAADF volume of chemical runs."""

from __future__ import annotations

import astra
import numpy as np
import pytest
from test_distributed import LINES, core_shell_series

from chemtomo.geometry import TiltGeometry, columns_to_sinogram, volume_to_columns
from chemtomo.io import read_result, write_result
from chemtomo.physics import paper_table2
from chemtomo.pipeline import reconstruct_haadf, reconstruct_series
from chemtomo.projector import make_operator
from chemtomo.projector.astra_backend import astra_geometries
from chemtomo.tiltseries import TiltSeries

PIXEL_NM = 1.5


def astra_sirt(geom: TiltGeometry, sino: np.ndarray, n_iter: int, units: str = "pixel") -> np.ndarray:
    """ASTRA's own CPU SIRT (strip projector, MinConstraint 0) of one slice's sinogram (n_tilts, n_pixels).

    ``units="pixel"``: plain ASTRA as etspy and tomviz run it (unit voxels); ``"nm"``: chemtomo's
    ASTRA geometries (lengths in nm).
    """
    if units == "nm":
        vol, proj = astra_geometries(geom)
    else:
        vol = astra.create_vol_geom(geom.n_grid, geom.n_grid)
        proj = astra.create_proj_geom("parallel", 1.0, geom.n_pixels, np.deg2rad(geom.angles_deg))
    pid = astra.create_projector("strip", proj, vol)
    sid = astra.data2d.create("-sino", proj, np.ascontiguousarray(sino, np.float32))
    rid = astra.data2d.create("-vol", vol, 0)
    cfg = astra.astra_dict("SIRT")
    cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid)
    cfg["option"] = {"MinConstraint": 0}
    aid = astra.algorithm.create(cfg)
    try:
        astra.algorithm.run(aid, n_iter)
        return astra.data2d.get(rid)
    finally:
        astra.algorithm.delete(aid)
        astra.data2d.delete([sid, rid])
        astra.projector.delete(pid)


@pytest.fixture(scope="module")
def haadf_series() -> TiltSeries:
    """A HAADF-only series of a particle whose size changes along the tilt axis: 4 slices, 32 pixels, noisy."""
    rng = np.random.default_rng(7)
    angles = np.arange(-70.0, 70.1, 10.0)
    n, s = 32, 4
    g = TiltGeometry(angles, n, PIXEL_NM)
    W = make_operator(g)
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    vol = np.stack([(np.hypot(yy - 2, xx) < 9 * sc) * 2.0 + (np.hypot(yy + 3, xx - 4) < 4 * sc) * 5.0
                    for sc in np.linspace(0.7, 1.0, s)]).astype(np.float32)
    proj = columns_to_sinogram(W.forward(volume_to_columns(vol)), g.n_tilts, n)
    haadf = np.clip(proj + rng.normal(0, 0.02 * proj.max(), proj.shape), 0, None).astype(np.float32)
    return TiltSeries(angles, PIXEL_NM, {}, haadf)


def test_haadf_sirt_matches_astra_sirt(haadf_series):
    """HAADF-only SIRT = ASTRA's SIRT of the same stack: correlation > 0.999 per slice; per nm = ASTRA / pixel_nm."""
    res = reconstruct_haadf(haadf_series, "sirt", n_iter=100, chunk_slices=3)
    vol = res.haadf_volume
    assert vol.shape == (4, 32, 32) and vol.dtype == np.float32
    assert res.lines == [] and res.composition is None and res.maps.shape == (0, 4, 32, 32)
    assert res.parameters["method"] == "haadf_sirt" and res.parameters["n_iter"] == 100
    geom = haadf_series.geometry()
    corrs = []
    for j in range(haadf_series.n_slices):
        ref = astra_sirt(geom, haadf_series.haadf[:, j], 100)
        corrs.append(np.corrcoef(vol[j].ravel(), ref.ravel())[0, 1])
        # the units: chemtomo's volume is per nm of path, plain ASTRA's per voxel
        np.testing.assert_allclose(vol[j] * PIXEL_NM, ref, atol=1e-4 * float(np.abs(ref).max()))
        np.testing.assert_allclose(vol[j], astra_sirt(geom, haadf_series.haadf[:, j], 100, "nm"),
                                   atol=1e-4 * float(np.abs(ref).max()))
    assert min(corrs) > 0.999, corrs


def test_haadf_tv_runs_through_the_engine_and_does_not_depend_on_the_chunks(haadf_series):
    a = reconstruct_haadf(haadf_series, "tv", n_iter=40, mu=0.1, chunk_slices=4)
    b = reconstruct_haadf(haadf_series, "tv", n_iter=40, mu=0.1, chunk_slices=1)
    np.testing.assert_allclose(a.haadf_volume, b.haadf_volume, rtol=1e-5,
                               atol=1e-6 * float(np.max(a.haadf_volume)))
    assert a.parameters["method"] == "haadf_tv" and a.parameters["engine"] == "ls_tv"
    assert "constants" in a.parameters
    ref = reconstruct_haadf(haadf_series, "sirt", n_iter=100).haadf_volume
    assert np.corrcoef(a.haadf_volume.ravel(), ref.ravel())[0, 1] > 0.95


def test_haadf_result_writes_and_reads(haadf_series, tmp_path):
    res = reconstruct_haadf(haadf_series, n_iter=20)
    write_result(tmp_path / "r.h5", res)
    back = read_result(tmp_path / "r.h5")
    np.testing.assert_array_equal(back["haadf"], res.haadf_volume)
    assert back["maps"] == {} and back["mask"] is None and back["pixel_nm"] == PIXEL_NM
    per_px = read_result(tmp_path / "r.h5", map_units="per_pixel")["haadf"]
    np.testing.assert_allclose(per_px, res.haadf_volume * PIXEL_NM, rtol=1e-6)


def test_haadf_refusals(haadf_series):
    with pytest.raises(ValueError, match="'sirt' or 'tv'"):
        reconstruct_haadf(haadf_series, "hebt")
    with pytest.raises(ValueError, match="unknown parameter"):
        reconstruct_haadf(haadf_series, "sirt", mu=0.1)
    negative = TiltSeries(haadf_series.angles_deg, PIXEL_NM, {}, haadf_series.haadf - 1.0)
    with pytest.raises(ValueError, match="non-negative HAADF"):
        reconstruct_haadf(negative, "tv")
    no_haadf = TiltSeries(haadf_series.angles_deg, PIXEL_NM, {"Ag_La": haadf_series.haadf})
    with pytest.raises(ValueError, match="needs a series with HAADF"):
        reconstruct_haadf(no_haadf)


@pytest.fixture(scope="module")
def chem():
    return core_shell_series(n_slices=4, n_pixels=24), paper_table2(LINES)


@pytest.mark.parametrize("method", ["eds_sirt", "hebt_sirt"])
def test_chemical_result_holds_the_haadf_volume_and_the_same_maps(chem, method):
    """The HAADF volume is a SIRT of the HAADF stack; asking for it changes no map bit."""
    series, factors = chem
    with_h = reconstruct_series(series, factors, method, n_iter=30, chunk_slices=3, mask_method="otsu")
    without = reconstruct_series(series, factors, method, n_iter=30, chunk_slices=3, mask_method="otsu",
                                 haadf_volume=False)
    np.testing.assert_array_equal(with_h.maps, without.maps)
    np.testing.assert_array_equal(with_h.composition.weight, without.composition.weight)
    assert without.haadf_volume is None and "haadf_volume" not in without.parameters
    assert with_h.haadf_volume.shape == (4, 24, 24)
    assert with_h.parameters["haadf_volume"] == {"method": "sirt", "n_iter": 30}
    alone = reconstruct_haadf(series, "sirt", n_iter=30)
    np.testing.assert_array_equal(with_h.haadf_volume, alone.haadf_volume)


def test_eds_only_series_has_no_haadf_volume(chem):
    series, factors = chem
    eds_only = TiltSeries(series.angles_deg, series.pixel_nm, series.eds)
    res = reconstruct_series(eds_only, factors, "eds_sirt", n_iter=10, mask_method="otsu")
    assert res.haadf_volume is None
