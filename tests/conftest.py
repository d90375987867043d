"""Shared fixtures: small geometries and phantoms that run in milliseconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chemtomo.geometry import TiltGeometry

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def small_geom() -> TiltGeometry:
    """24 pixels, 13 tilts -60..60 deg, 1.5 nm."""
    return TiltGeometry(np.arange(-60.0, 60.1, 10.0), 24, 1.5)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
