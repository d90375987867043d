"""fused_huber in the volume pipeline: overlapping chunks (halo slices) for its prior across slices."""

from __future__ import annotations

import numpy as np
import pytest
from test_distributed import LINES, core_shell_series

from chemtomo.physics import paper_table2
from chemtomo.pipeline import reconstruct_series


@pytest.fixture(scope="module")
def series():
    return core_shell_series(n_slices=6, n_pixels=20)


@pytest.fixture(scope="module")
def factors():
    return paper_table2(LINES)


def _run(series, factors, chunk, **params):
    return reconstruct_series(series, factors, method="fused_huber", chunk_slices=chunk,
                              params={"mu": 0.2, "n_iter": 30, **params}).maps


def test_halo_covering_the_volume_makes_chunks_invisible(series, factors):
    """Chunks of 2 slices with a halo reaching every slice equal one chunk of all.

    Each chunk solves the whole volume and keeps its own slices (float32 rounding of the
    batched kernels).
    """
    whole = _run(series, factors, 6)
    parts = _run(series, factors, 2, halo_slices=6)
    np.testing.assert_allclose(parts, whole, rtol=1e-5, atol=1e-6 * float(np.max(whole)))


def test_the_prior_couples_slices_across_chunks(series, factors):
    """Without a halo a chunk boundary cuts the coupling (maps change); without coupling chunks do not matter."""
    whole = _run(series, factors, 6)
    cut = _run(series, factors, 2, halo_slices=0)
    assert np.max(np.abs(cut - whole)) > 1e-3 * float(np.max(whole))
    flat_whole = _run(series, factors, 6, slice_coupling=False)
    flat_parts = _run(series, factors, 2, slice_coupling=False)
    np.testing.assert_allclose(flat_parts, flat_whole, rtol=1e-5, atol=1e-6 * float(np.max(flat_whole)))


def test_auto_chooses_mu_and_huber(series, factors):
    res = reconstruct_series(series, factors, method="fused_huber", params={"n_iter": 8}, auto=True,
                             auto_slices=2, auto_grid={"mu": (0.1, 0.3), "huber": (0.05, 0.5)}, filter_sigma=None)
    chosen = res.parameters["auto"]["params"]
    assert set(chosen) == {"mu", "huber"} and chosen["huber"] in (0.05, 0.5)
    assert res.parameters["huber"] == chosen["huber"] and res.parameters["mu"] == pytest.approx(chosen["mu"])
    assert len(res.parameters["auto"]["scores"]) == 4
