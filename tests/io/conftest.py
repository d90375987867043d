"""A small hand-built result (no reconstruction): the writers' and readers' input."""

from __future__ import annotations

import numpy as np
import pytest

from chemtomo.geometry import TiltGeometry
from chemtomo.pipeline import VolumeResult
from chemtomo.quantify import Composition, Threshold
from chemtomo.reconstruct.hebt import ResponseRatios

PIXEL_NM = 2.5


def make_result(shape=(4, 6, 6), with_haadf=False) -> VolumeResult:
    """A VolumeResult of two lines/elements on a ``shape`` (y, z, x) grid of 2.5 nm voxels."""
    rng = np.random.default_rng(7)
    nx = shape[2]
    maps = rng.random((2, *shape)).astype(np.float32)
    mask = maps.sum(axis=0) > 0.8
    w = np.where(mask, maps / maps.sum(axis=0), 0.0)
    a = np.where(mask, 1 - w, 0.0)[::-1]
    geom = TiltGeometry(np.arange(-60.0, 61.0, 30.0), nx, PIXEL_NM)
    res = VolumeResult(
        lines=["Fe_Ka", "Pt_La"], elements=["Fe", "Pt"], maps=maps, factor="f",
        composition=Composition(["Fe_Ka", "Pt_La"], ["Fe", "Pt"], w, a, mask,
                                Threshold(0.8, "given", float(mask.mean()), 0.0)),
        response_ratios=ResponseRatios(("Fe_Ka", "Pt_La"), np.array([1.5, 2.5]), 0.99, 100),
        theory_response_ratios=np.array([1.4, 2.6]), geometry=geom,
        parameters={"method": "hebt_sirt", "n_iter": 30, "alpha": 0.5, "nested": {"a": [1, 2]}},
    )
    if with_haadf:
        res.haadf_volume = rng.random(shape).astype(np.float32)
    return res


@pytest.fixture
def volume_result() -> VolumeResult:
    return make_result()


@pytest.fixture
def volume_result_haadf() -> VolumeResult:
    return make_result(with_haadf=True)
