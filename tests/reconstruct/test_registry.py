"""The method registry.

Parameters validated once, the CLI's defaults read from it, and a method added in this file alone
running through the pipeline, the chunk runner and the resumable store.
"""

from __future__ import annotations

import argparse
import pickle
from dataclasses import FrozenInstanceError, dataclass

import numpy as np
import pytest

from chemtomo.physics import paper_table2
from chemtomo.pipeline import reconstruct_series
from chemtomo.pipeline.distributed import ChunkSpec, Runner, reconstruct_chunk
from chemtomo.pipeline.memory import chunk_bytes
from chemtomo.pipeline.store import VolumeStore
from chemtomo.pipeline.volume import prepare_series, series_to_channel_data
from chemtomo.preprocess import FILTER_SIGMA_PX
from chemtomo.reconstruct import (
    ChannelData,
    Method,
    MethodParams,
    MethodResult,
    canonical_name,
    get_method,
    method_names,
    register,
    unregister,
)
from chemtomo.tiltseries import TiltSeries

LINES = ["Ag_La", "Au_Ma"]


def core_shell_series(n_slices: int, n_pixels: int, seed: int = 0) -> TiltSeries:
    """Poisson sinograms of a disc of two lines (every slice slightly different), with a HAADF."""
    from chemtomo.geometry import TiltGeometry, columns_to_sinogram, volume_to_columns
    from chemtomo.projector import make_operator

    rng = np.random.default_rng(seed)
    angles = np.arange(-60.0, 60.1, 15.0)
    g = TiltGeometry(angles, n_pixels, 1.0)
    W = make_operator(g)
    yy, xx = np.mgrid[:n_pixels, :n_pixels] - (n_pixels - 1) / 2
    r = np.hypot(yy, xx)
    vol = np.stack([(r < 0.3 * n_pixels * (0.7 + 0.05 * s)) for s in range(n_slices)]).astype(np.float32)
    eds = {ln: rng.poisson(columns_to_sinogram(W.forward(volume_to_columns(vol * (3.0 + 2 * i))), g.n_tilts,
                                               n_pixels)).astype(np.float32) for i, ln in enumerate(LINES)}
    haadf = rng.poisson(5 * eds["Ag_La"] + 9 * eds["Au_Ma"] + 1).astype(np.float32)
    return TiltSeries(angles, 1.0, eds, haadf)

BUILT_IN = ("eds_sirt", "hebt_sirt", "ls_tv", "poisson_tv", "fused_tv")


# -- the built-in methods ------------------------------------------------------------------------


def test_builtins_are_registered_in_order():
    assert method_names()[:5] == BUILT_IN
    assert get_method("fused-tv") is get_method("fused_tv")
    assert canonical_name("poisson-tv") == "poisson_tv"
    with pytest.raises(ValueError, match=r"unknown reconstruction method 'magic'; available: \["):
        get_method("magic")


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_method_rejects_an_unknown_parameter_naming_the_allowed(name):
    m = get_method(name)
    allowed = m.Params.names()
    with pytest.raises(ValueError) as err:
        m.params({"n_itr": 999})
    msg = str(err.value)
    assert "n_itr" in msg and all(p in msg for p in allowed), msg
    with pytest.raises(ValueError, match="n_itr"):
        m.params(n_itr=3)
    with pytest.raises(ValueError, match="n_itr"):
        m.params().replace(n_itr=3)


def test_alpha_belongs_to_the_methods_that_have_it():
    assert get_method("hebt_sirt").params(alpha=0.5).alpha == 0.5
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        get_method("hebt_sirt").params(alpha=1.0)
    for name in ("eds_sirt", "ls_tv", "poisson_tv", "fused_tv"):
        with pytest.raises(ValueError, match="alpha"):
            get_method(name).params(alpha=0.5)


def test_params_are_validated_frozen_and_picklable():
    p = get_method("fused_tv").params({"mu": 0.2, "n_iter": 7.0})
    assert p.n_iter == 7 and isinstance(p.n_iter, int) and p.mu == 0.2
    with pytest.raises(FrozenInstanceError):
        p.mu = 1.0
    assert pickle.loads(pickle.dumps(p)) == p
    for bad in ({"n_iter": 0}, {"mu": -1.0}, {"theta": 0.0}, {"haadf_model_error": float("nan")},
                {"haadf_model_error": 0.0}, {"haadf_model_error": 1.0}):  # tv_solve's range: (0, 1)
        with pytest.raises(ValueError):
            get_method("fused_tv").params(bad)
    with pytest.raises(ValueError, match="takes FusedTvParams"):
        get_method("fused_tv").params(get_method("ls_tv").params())


def test_one_home_of_the_defaults():
    assert get_method("eds_sirt").Params.defaults() == {"n_iter": 100}
    assert get_method("hebt_sirt").Params.defaults() == {"n_iter": 100, "alpha": 0.8}
    assert get_method("ls_tv").params().mu == get_method("poisson_tv").params().mu == 0.17
    assert get_method("fused_tv").params().mu == 0.34
    for name in BUILT_IN:
        m = get_method(name)
        assert m.default_grid and set(m.default_grid) <= set(m.Params.names()) | {"n"}


def test_pipeline_validates_before_any_work():
    series = core_shell_series(n_slices=2, n_pixels=16)
    factors = paper_table2(LINES)
    with pytest.raises(ValueError, match=r"n_itr.*its parameters are \['n_iter'\]"):
        reconstruct_series(series, factors, "eds_sirt", {"n_itr": 999, "mu": 3.0})
    with pytest.raises(ValueError, match="alpha"):
        reconstruct_series(series, factors, "eds_sirt", alpha=0.5)


def test_automatic_rule_solves_the_runs_model(monkeypatch):
    # the CV of mu must fit the model the final solve uses: before, the rule's solves took tv_solve's
    # defaults (coupled TV, 1 % HAADF model error) whatever the run's parameters
    import chemtomo.reconstruct.methods as methods

    seen = {}
    real = methods.cv_tv_weight

    def spy(*args, **kw):
        seen.update(kw)
        return real(*args, **kw)

    monkeypatch.setattr(methods, "cv_tv_weight", spy)
    series = core_shell_series(n_slices=2, n_pixels=16)
    params = {"n_iter": 5, "coupled": False, "haadf_model_error": 0.05, "haadf_gain": 0.5, "theta": 1.5}
    res = reconstruct_series(series, paper_table2(LINES), "fused_tv", params, auto=True, auto_slices=1,
                             auto_grid={"mu": (0.1, 0.2)}, filter_sigma=None)
    assert {k: seen[k] for k in ("coupled", "haadf_model_error", "haadf_gain", "theta", "n_iter")} == {
        "coupled": False, "haadf_model_error": 0.05, "haadf_gain": 0.5, "theta": 1.5, "n_iter": 5}
    assert res.parameters["coupled"] is False and res.parameters["haadf_model_error"] == 0.05


def test_tv_rule_defaults_to_its_coarse_grid_and_the_oracle_grid_stays_fine(monkeypatch):
    """ls_tv, poisson_tv and fused_tv choose mu on the 4-point grid (0.06..0.48, factor 2 apart) unless told.

    Their ``default_grid`` (the studies' oracle sweep) keeps the 7 points sqrt(2) apart and
    fused_huber's rule keeps them too; a caller's candidates replace the rule's. The rule's cost
    without candidates: 4 folds x 4 mu x the slices it chooses on, each ``n_iter`` iterations.
    """
    import chemtomo.reconstruct.methods as methods

    fine = (0.06, 0.085, 0.12, 0.17, 0.24, 0.34, 0.48)
    for name in ("ls_tv", "poisson_tv", "fused_tv"):
        m = get_method(name)
        assert m.default_grid == {"mu": fine}
        assert m.rule_candidates() == {"mu": (0.06, 0.12, 0.24, 0.48)}
        assert m.rule_candidates({"mu": [0.1, 0.2]}) == {"mu": (0.1, 0.2)}
    huber = get_method("fused_huber")
    assert huber.rule_candidates() == {"mu": fine, "huber": tuple(huber.default_grid["huber"])}
    assert get_method("hebt_sirt").rule_candidates() == dict(get_method("hebt_sirt").default_grid)

    seen = []
    real = methods.cv_tv_weight

    def spy(W, counts, model, mus, **kw):
        seen.append(tuple(mus))
        return real(W, counts, model, mus, **kw)

    monkeypatch.setattr(methods, "cv_tv_weight", spy)
    series = core_shell_series(n_slices=2, n_pixels=16)
    res = reconstruct_series(series, paper_table2(LINES), "fused_tv", {"n_iter": 5}, auto=True, auto_slices=1,
                             filter_sigma=None)
    assert seen == [(0.06, 0.12, 0.24, 0.48)]
    auto = res.parameters["auto"]
    assert [g["mu"] for g in auto["grid"]] == [0.06, 0.12, 0.24, 0.48]
    assert auto["column_iterations"] == 5 * 4 * 4 * 1  # iterations x folds x candidates x slices


# -- the CLI reads the registry -------------------------------------------------------------------


def _cli_parser():
    from chemtomo.cli.reconstruct import add_parser

    root = argparse.ArgumentParser()
    return add_parser(root.add_subparsers())


def test_cli_defaults_equal_the_registry():
    from chemtomo.cli.reconstruct import method_params
    from chemtomo.physics import DETECTOR_EFFICIENCY
    from chemtomo.preprocess import FILTER_SIGMA_PX

    p = _cli_parser()
    args = p.parse_args(["--out", "x"])
    assert args.filter_sigma == FILTER_SIGMA_PX and args.efficiency == DETECTOR_EFFICIENCY
    given = method_params(args, list(BUILT_IN))
    assert given == {m: {} for m in BUILT_IN}  # nothing given: every parameter is the registry's
    for m in BUILT_IN:
        assert get_method(m).params(given[m]) == get_method(m).Params()
    text = p.format_help().replace("\n", " ")
    text = " ".join(text.split())
    for m in BUILT_IN:
        for name, value in get_method(m).Params.defaults().items():
            assert f"{name}={value}" in text, (m, name)
    assert f"hebt_sirt {get_method('hebt_sirt').params().alpha}" in text


def test_cli_params_flags_and_errors():
    from chemtomo.cli.reconstruct import method_params

    p = _cli_parser()
    args = p.parse_args(["--out", "x", "-n", "50", "fused-tv=300", "--alpha", "0.6", "--mu", "0.2",
                         "--param", "tol=1e-4", "--param", "fused_tv.haadf_model_error=0.02",
                         "--param", "poisson-tv.coupled=false"])
    got = method_params(args, ["eds_sirt", "hebt_sirt", "poisson_tv", "fused_tv"])
    assert got["eds_sirt"] == {"n_iter": 50}
    assert got["hebt_sirt"] == {"n_iter": 50, "alpha": 0.6}
    assert got["poisson_tv"] == {"n_iter": 50, "mu": 0.2, "tol": 1e-4, "coupled": False}
    assert got["fused_tv"] == {"n_iter": 300, "mu": 0.2, "tol": 1e-4, "haadf_model_error": 0.02}
    with pytest.raises(ValueError, match="no method run has a parameter 'n_itr'"):
        method_params(p.parse_args(["--out", "x", "--param", "n_itr=5"]), ["eds_sirt"])
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['mu'\] for method 'eds_sirt'"):
        method_params(p.parse_args(["--out", "x", "--param", "eds_sirt.mu=5"]), ["eds_sirt"])
    with pytest.raises(ValueError, match="not among the methods run"):
        method_params(p.parse_args(["--out", "x", "--param", "ls_tv.mu=5"]), ["eds_sirt"])
    # -n for a method not run (a typo) is an error, as --param METHOD.NAME is, not silently ignored
    with pytest.raises(ValueError, match=r"--iterations names \['fused_tvv'\]"):
        method_params(p.parse_args(["--out", "x", "-n", "100", "fused_tvv=300"]), ["eds_sirt", "fused_tv"])


# -- a method added here alone ---------------------------------------------------------------------


@dataclass(frozen=True)
class LandweberParams(MethodParams):
    """Toy: ``n_steps`` projected Landweber steps of relative size ``step``."""

    n_steps: int = 5
    step: float = 1.0

    def __post_init__(self):
        if int(self.n_steps) < 1:
            raise ValueError(f"n_steps must be >= 1, got {self.n_steps}")
        if not 0 < float(self.step) < 2:
            raise ValueError(f"step must lie in (0, 2), got {self.step}")


class Landweber(Method):
    """Toy: projected Landweber iterations ``x += step / L W^T (b - W x)`` on every line and slice."""

    name = "toy_landweber"
    Params = LandweberParams
    factor = "f"

    def solve(self, W, data: ChannelData, params: LandweberParams, *, constants=None, snapshots=(),
              callback=None) -> MethodResult:
        k, m, s = data.eds.shape
        b = np.ascontiguousarray(data.eds.transpose(1, 0, 2).reshape(m, k * s), dtype=np.float32)
        lip = float(constants["lipschitz"])
        x = np.zeros((W.shape[1], k * s), np.float32)
        for _ in range(params.n_steps):
            x = np.maximum(x + np.float32(params.step / lip) * W.adjoint(b - W.forward(x)), 0)
        return MethodResult(np.ascontiguousarray(x.reshape(-1, k, s).transpose(1, 0, 2)), "f")

    def setup(self, W, data, params) -> dict:
        """``||W||^2`` bounded by (max row sum) x (max column sum), from the projector alone."""
        one_r = np.ones((W.shape[0], 1), np.float32)
        one_c = np.ones((W.shape[1], 1), np.float32)
        return {"lipschitz": float(W.adjoint(one_r).max() * W.forward(one_c).max())}


@pytest.fixture
def toy():
    method = register(Landweber())
    try:
        yield method
    finally:
        unregister(method.name)
    assert "toy_landweber" not in method_names()


def test_toy_method_runs_through_pipeline_runner_and_store(toy, tmp_path):
    series = core_shell_series(n_slices=6, n_pixels=24)
    factors = paper_table2(LINES)
    assert chunk_bytes(series.geometry(), 2, 3, toy.name) > 0  # the default memory model
    with pytest.raises(ValueError, match=r"'n_itr'.*\['n_steps', 'step'\]"):
        reconstruct_series(series, factors, "toy-landweber", {"n_itr": 3})
    with pytest.raises(ValueError, match="n_iter"):
        reconstruct_series(series, factors, toy.name, n_iter=3)  # the toy has no n_iter
    whole = reconstruct_series(series, factors, "toy-landweber", {"n_steps": 4}, chunk_slices=6)
    assert whole.factor == "f" and whole.parameters["n_steps"] == 4 and "lipschitz" in whole.parameters["constants"]
    assert float(np.max(whole.maps)) > 0
    parts = reconstruct_series(series, factors, toy.name, toy.params(n_steps=4), chunk_slices=2)
    np.testing.assert_array_equal(parts.maps, whole.maps)
    # the chunk task through the runner, as a Dask worker runs it (the pipeline feeds the filtered series)
    prepared = prepare_series(series, FILTER_SIGMA_PX, "image")
    spec = ChunkSpec(series.geometry().key(), "batched", toy.name, {"n_steps": 4}, whole.parameters["constants"])
    spec = pickle.loads(pickle.dumps(spec))
    got = {}
    with Runner("inprocess") as runner:
        runner.run(spec, [(0, 0, 4), (1, 4, 6)], lambda a, b: series_to_channel_data(prepared, LINES, a, b),
                   lambda i, a, b, out: got.__setitem__(i, out.maps))
    np.testing.assert_array_equal(np.concatenate([got[0], got[1]], axis=1), whole.maps)
    np.testing.assert_array_equal(reconstruct_chunk(spec, series_to_channel_data(prepared, LINES, 2, 3)).maps,
                                  whole.maps[:, 2:3])
    # the resumable store: a finished run resumes to the same maps; a changed parameter is refused
    path = tmp_path / "toy.zarr"
    stored = reconstruct_series(series, factors, toy.name, {"n_steps": 4}, store=path, chunk_slices=2)
    np.testing.assert_array_equal(np.asarray(stored.maps), whole.maps)
    again = reconstruct_series(series, factors, toy.name, {"n_steps": 4}, store=path, resume=True)
    np.testing.assert_array_equal(np.asarray(again.maps), whole.maps)
    assert VolumeStore.read(path).fingerprint["parameters"]["n_steps"] == 4
    from chemtomo.pipeline.store import StoreMismatchError

    with pytest.raises(StoreMismatchError, match=r"parameter n_steps: 4 -> 5"):
        reconstruct_series(series, factors, toy.name, {"n_steps": 5}, store=path, resume=True)


def test_registering_checks_the_method():
    with pytest.raises(ValueError, match="registered already"):
        register(get_method("eds_sirt").__class__())
    bad = Landweber()
    bad.name = "toy-bad"
    with pytest.raises(ValueError, match="underscores"):
        register(bad)
    with pytest.raises(ValueError, match="no automatic parameter rule"):
        Landweber().choose(None, None, {})
    stray = Landweber()
    stray.name, stray.rule_grid = "toy_stray_rule_grid", {"lam": (1.0,)}
    with pytest.raises(ValueError, match=r"rule_grid names \['lam'\] are not in its default_grid"):
        register(stray)
    assert "toy_stray_rule_grid" not in method_names()
