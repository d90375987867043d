"""The method registry: one object per reconstruction method, owning everything about it.

A :class:`Method` states

- its parameters: a frozen dataclass (:class:`MethodParams` subclass) holding the
  defaults, with units in names or docstrings and validation in ``__post_init__``;
- what data it needs: HAADF (``needs_haadf``), the unfiltered counts (``raw_counts``);
- the factor its maps are quantified by (``factor``: ``"f"`` for maps ∝ f_A C_A rho,
  eq 12; ``"z"`` for maps ∝ z_A C_A rho, eq 18);
- its solve on a chunk of slices (:meth:`Method.solve`);
- its volume-level set-up (:meth:`Method.setup`: constants computed once from all of a
  volume's data and handed to every chunk, so that a slice does not depend on its chunk);
- its automatic rule and default candidate grid (:meth:`Method.choose`,
  :attr:`Method.default_grid`);
- its memory model (:meth:`Method.peak_factors`);
- optionally, a warm start (``warm_start``): the method can start from an earlier
  solve's state (:class:`WarmStart`, handed in as ``ChannelData.warm``) and return its
  own (``MethodResult.warm``, when ``ChannelData.keep_warm``), so that a solve of
  nearby data (the absorption correction's outer loop) need not start afresh.

The pipeline, the Dask runner, the store, the CLI and the studies ask the registry
(:func:`get_method`) for all of these; a new method is one subclass and one
:func:`register` call. This module is a leaf of :mod:`chemtomo.reconstruct`.

Example
-------
>>> from chemtomo.reconstruct import get_method
>>> m = get_method("fused-tv")            # hyphens or underscores
>>> p = m.params({"mu": 0.2})             # validated, defaults filled in
>>> p.n_iter, p.mu
(100, 0.2)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ..projector.base import Operator

FactorKind = Literal["f", "z"]


# ----------------------------------------------------------------------------- data and results

@dataclass
class WarmStart:
    """An earlier solve's state on some columns (slices): where a solve of nearby data may start.

    Every array has one column per slice on its last axis, so a volume's state is cut
    into chunks (:meth:`columns`) and put together again (:meth:`concatenate`) like
    the slices themselves.

    Attributes
    ----------
    maps : ndarray, (k, n_vox, s)
        The earlier solve's maps, in the method's units.
    state : tuple of ndarray
        Method-specific arrays, each ``(..., s)`` (a primal-dual solver's duals, in a form
        that does not depend on the data's scaling); empty: the maps alone.
    method : str
        The method that made it (a warm start is refused by another method).
    """

    maps: np.ndarray
    state: tuple = ()
    method: str = ""

    @property
    def n_slices(self) -> int:
        """Slices (columns) held."""
        return int(self.maps.shape[-1])

    def columns(self, start: int, stop: int) -> WarmStart:
        """The state of slices ``start:stop`` (copies)."""
        cut = lambda a: np.ascontiguousarray(a[..., start:stop])  # noqa: E731
        return WarmStart(cut(self.maps), tuple(cut(a) for a in self.state), self.method)

    @staticmethod
    def concatenate(parts: list[WarmStart]) -> WarmStart:
        """The states of consecutive slice ranges, in order, as one."""
        if not parts:
            raise ValueError("no warm-start parts to concatenate")
        join = lambda arrays: np.concatenate(arrays, axis=-1)  # noqa: E731
        n_state = {len(p.state) for p in parts}
        if len(n_state) != 1 or len({p.method for p in parts}) != 1:
            raise ValueError("warm-start parts of different methods or state layouts cannot be joined")
        state = tuple(join([p.state[i] for p in parts]) for i in range(n_state.pop()))
        return WarmStart(join([p.maps for p in parts]), state, parts[0].method)


@dataclass
class ChannelData:
    """The measured data of a chunk of slices, as operator columns.

    Attributes
    ----------
    lines : list of str
    eds : ndarray, (k, n_rays, s)
        EDS line data (counts), one column per slice.
    haadf : ndarray (n_rays, s) or None
        On the rays of ``W.modality("haadf")`` (its own tilts' when it has them).
    response_ratios : ndarray (k,) or None
        ``r_A`` (needed by bimodal methods).
    halo : (int, int)
        Slices at the start and the end that are context only (overlapping chunks of a
        method whose prior couples slices, :meth:`Method.halo_slices`): the method
        solves them with the rest and returns the maps of the others.
    warm : WarmStart or None
        An earlier solve's state on the same columns (halo included) to start from; only
        for a method with ``warm_start`` (:meth:`Method.check_warm`).
    keep_warm : bool
        Ask the method to return its final state in ``MethodResult.warm`` (own slices only).
    """

    lines: list[str]
    eds: np.ndarray
    haadf: np.ndarray | None = None
    response_ratios: np.ndarray | None = None
    halo: tuple[int, int] = (0, 0)
    warm: WarmStart | None = None
    keep_warm: bool = False

    @property
    def n_slices(self) -> int:
        """Slices (columns) of the chunk."""
        return int(self.eds.shape[2])


@dataclass
class MethodResult:
    """Maps of every line: ``maps`` (k, n_vox, s); ``snapshots`` n -> maps for sweeps.

    ``warm``: the solve's final state (:class:`WarmStart`), when ``ChannelData.keep_warm`` asked for it.
    """

    maps: np.ndarray
    factor: FactorKind
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    warm: WarmStart | None = None


@dataclass(frozen=True)
class RuleInputs:
    """What an automatic rule may read: measured data only, never a ground truth.

    Attributes
    ----------
    counts : ndarray, (k, n_rays, s)
        Raw (unfiltered) EDS counts of the slices the choice is made on.
    data : ndarray (k, n_rays, s) or None
        The method's EDS input when it differs from ``counts`` (Gaussian-filtered).
    haadf : ndarray (n_rays, s) or None
    r : ndarray (k,) or None
        Response ratios.
    n_tilts, n_pixels : int or None
        Sinogram layout (rules that filter the training rays need it).
    filter_sigma_px : float
        Gaussian pre-filter (pixels) of the method's input; 0 for none.
    filter_axes : str
    n_iter : int or None
        Iterations of the solves a rule runs (regularised solvers; None: the rule's default).
    noise_factor : float
        Variance over mean of ``counts``.
    constants : dict or None
        The volume's set-up constants, when the choice is made on some of its slices.
    params : MethodParams or None
        The run's parameters (those the rule does not choose, e.g. the model options of
        the regularised solvers, must be the ones the final solve uses; None: the defaults).
    """

    counts: np.ndarray
    data: np.ndarray | None = None
    haadf: np.ndarray | None = None
    r: Any = None
    n_tilts: int | None = None
    n_pixels: int | None = None
    filter_sigma_px: float = 0.0
    filter_axes: str = "sinogram"
    n_iter: int | None = None
    noise_factor: float = 1.0
    constants: Any = None
    params: Any = None


# ----------------------------------------------------------------------------- parameters

@dataclass(frozen=True)
class MethodParams:
    """Base of every method's parameters: a frozen dataclass, validated on creation.

    Subclasses declare their fields with defaults (the one home of every default) and
    check them in ``__post_init__`` (use :meth:`_set` to store a normalised value).
    Instances are small and picklable: they travel with every chunk of a run.
    """

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The parameter names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def defaults(cls) -> dict:
        """Name -> default value."""
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def check_names(cls, names, method: str = "") -> None:
        """Raise ValueError naming every unknown name and the allowed ones."""
        unknown = sorted(set(names) - set(cls.names()))
        if unknown:
            who = f"method {method!r}" if method else cls.__name__
            raise ValueError(f"unknown parameter(s) {unknown} for {who}; its parameters are "
                             f"{list(cls.names())}")

    @classmethod
    def from_dict(cls, values: Mapping | None = None, method: str = "") -> MethodParams:
        """Validated parameters from a mapping (missing names take their defaults)."""
        values = dict(values or {})
        cls.check_names(values, method)
        return cls(**values)

    def replace(self, **changes) -> MethodParams:
        """A validated copy with ``changes`` (unknown names are a ValueError)."""
        self.check_names(changes)
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        """Name -> value (JSON-friendly for the built-in methods)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def _set(self, name: str, value) -> None:
        object.__setattr__(self, name, value)


# ----------------------------------------------------------------------------- the method contract

class Method:
    """One reconstruction method (subclass it; register an instance with :func:`register`).

    Attributes
    ----------
    name : str
        Canonical name (underscores).
    Params : type
        Its :class:`MethodParams` subclass.
    factor : {"f", "z"}
        What its maps are quantified by.
    needs_haadf : bool
        Needs HAADF data and response ratios.
    raw_counts : bool
        Models the counts' noise: the pipeline hands it the unfiltered EDS data.
    default_grid : dict
        Candidates of its automatic rule and the studies' oracle sweep, name -> tuple (empty: no rule).
    rule_grid : dict
        The rule's own candidates where coarser than ``default_grid`` (:meth:`rule_candidates`).
    memory_factors : dict
        Backend -> ``(a, b)`` of the peak memory model (see :meth:`peak_factors`).
    warm_start : bool
        The solve can start from an earlier solve's :class:`WarmStart` (``ChannelData.warm``)
        and return its own (``ChannelData.keep_warm``); others refuse both
        (:meth:`check_warm`).
    fits_each_line : bool
        Its maps fit every EDS line's own counts (one data term per line), so that an
        absorption correction may be estimated from them; False for a method whose fit
        may give a line no weight (HEBT's response-ratio fit to the HAADF).
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type[MethodParams]] = MethodParams
    factor: ClassVar[FactorKind] = "f"
    needs_haadf: ClassVar[bool] = False
    raw_counts: ClassVar[bool] = False
    default_grid: ClassVar[Mapping[str, tuple]] = {}
    rule_grid: ClassVar[Mapping[str, tuple]] = {}
    memory_factors: ClassVar[Mapping[str, tuple[float, float]]] = {}
    warm_start: ClassVar[bool] = False
    fits_each_line: ClassVar[bool] = True
    # Peak bytes of one chunk solve per slice, as multiples of 4-byte values of (k + 1)
    # sinogram columns and k image columns (k lines), for methods and backends without
    # their own measurement: the regularised solvers' allowance, measured on ls_tv,
    # poisson_tv and fused_tv with tracemalloc (PDHG holds the iterate, its step and
    # update, the TV dual field with its K x, K xbar and prox temporaries: about 30
    # image-sized and 10-25 ray-sized columns per line; these leave 24-78 % margin over
    # the six measured cases; tests/pipeline/test_distributed.py checks it).
    DEFAULT_MEMORY_FACTORS: ClassVar[tuple[float, float]] = (16.0, 36.0)

    # -- parameters
    def params(self, params: MethodParams | Mapping | None = None, **values) -> MethodParams:
        """Validate parameters into this method's Params (defaults filled).

        Parameters
        ----------
        params : Params instance, mapping or None
            A ready instance (checked to be this method's), or name -> value.
        **values
            Overrides (validated by name).

        Raises
        ------
        ValueError
            An unknown or misspelt name (the message lists the method's parameters),
            or a value out of range.
        """
        if params is None:
            params = {}
        if isinstance(params, MethodParams):
            if type(params) is not self.Params:
                raise ValueError(f"method {self.name!r} takes {self.Params.__name__}, got "
                                 f"{type(params).__name__}")
            return params.replace(**values) if values else params
        if not isinstance(params, Mapping):
            raise ValueError(f"params must be a {self.Params.__name__} or a mapping, got {type(params).__name__}")
        return self.Params.from_dict({**params, **values}, self.name)

    # -- the solve
    def solve(self, W: Operator, data: ChannelData, params: MethodParams, *, constants: dict | None = None,
              snapshots=(), callback=None) -> MethodResult:
        """Reconstruct every line of every slice of ``data`` (one batched solve).

        Parameters
        ----------
        W : Operator
            Projector of one slice: the EDS lines'. A HAADF at tilts of its own comes
            with a :class:`~chemtomo.projector.modality.PerModality` ``W`` whose
            ``W.modality("haadf")`` is its projector; a method that uses the HAADF asks
            for it so (every operator answers, with itself when one geometry serves both).
        data : ChannelData
        params : MethodParams
            This method's (validated) parameters.
        constants : dict, optional
            The output of :meth:`setup` on the whole volume (None: computed from ``data``
            by methods that have a set-up; ignored by those that have none).
        snapshots : iterable of int
            Iteration counts whose maps are kept too.
        callback : callable, optional
            Called by the solver every iteration.

        Returns
        -------
        MethodResult
        """
        raise NotImplementedError

    def __call__(self, W: Operator, data: ChannelData, params=None, *, constants: dict | None = None,
                 snapshots=(), callback=None, **values) -> MethodResult:
        """``solve`` with the parameters validated from ``params`` and ``values`` (and a warm start checked)."""
        self.check_warm(data)
        return self.solve(W, data, self.params(params, **values), constants=constants, snapshots=snapshots,
                          callback=callback)

    def check_data(self, data: ChannelData) -> None:
        """Raise ValueError when ``data`` lacks what the method needs."""
        if self.needs_haadf:
            alt = [n for n, m in METHODS.items() if not m.needs_haadf]
            if data.haadf is None:
                raise ValueError(f"{self.name} needs HAADF data; use an EDS-only method ({', '.join(alt)}) "
                                 "for EDS-only series")
            if data.response_ratios is None:
                raise ValueError(f"{self.name} needs response ratios r_A (estimate_response_ratios)")

    def check_warm(self, data: ChannelData) -> None:
        """Raise ValueError when ``data`` asks for a warm start the method cannot give, or does not fit.

        A method without ``warm_start`` refuses ``data.warm`` and ``data.keep_warm``; one
        with it refuses a state of another method or of other columns.
        """
        if data.warm is None and not data.keep_warm:
            return
        if not self.warm_start:
            raise ValueError(f"method {self.name!r} cannot start from an earlier solve (warm start); methods "
                             f"that can: {[n for n, m in METHODS.items() if m.warm_start]}")
        w = data.warm
        if w is None:
            return
        if w.method and w.method != self.name:
            raise ValueError(f"a warm start made by method {w.method!r} cannot start {self.name!r}")
        k, s = data.eds.shape[0], data.n_slices
        if w.maps.ndim != 3 or w.maps.shape[0] != k or w.n_slices != s:
            raise ValueError(f"the warm start's maps {w.maps.shape} do not fit the data: (k={k}, n_vox, s={s})")

    # -- the volume's set-up
    def setup(self, W: Operator, data: ChannelData, params: MethodParams) -> dict | None:
        """Constants computed once from all of a volume's ``data`` (None: the method has none)."""
        return None

    def halo_slices(self, params: MethodParams) -> int:
        """Neighbouring slices each chunk should see on either side (0: slices are independent).

        A method whose prior couples slices returns the context it wants; the volume path
        then builds overlapping chunks (``ChannelData.halo``) and the method returns the
        maps of the chunk's own slices.
        """
        return 0

    @property
    def has_setup(self) -> bool:
        """Whether the method overrides :meth:`setup` (the pipeline then builds the projector for it)."""
        return type(self).setup is not Method.setup

    # -- the automatic rule
    def choose(self, W: Operator, inputs: RuleInputs, grid: Mapping[str, tuple]):
        """Parameters chosen from the data alone (a :class:`~chemtomo.reconstruct.autoparam.CVResult`).

        ``grid`` is :attr:`default_grid` updated by the caller's candidates.
        """
        raise ValueError(f"method {self.name!r} has no automatic parameter rule; rules exist for "
                         f"{[n for n, m in METHODS.items() if m.default_grid]}")

    def rule_candidates(self, grid: Mapping[str, tuple] | None = None) -> dict:
        """The rule's candidates, name -> tuple: :attr:`default_grid`, :attr:`rule_grid`, the caller's ``grid``."""
        return {k: tuple(v) for k, v in {**self.default_grid, **self.rule_grid, **(grid or {})}.items()}

    def apply_choice(self, params: MethodParams, chosen: Mapping) -> MethodParams:
        """``params`` with the values a rule chose (``chosen``: the rule's ``params``)."""
        return params.replace(**dict(chosen))

    # -- memory
    def peak_factors(self, backend: str) -> tuple[float, float]:
        """``(a, b)``: peak bytes of a chunk solve per slice are ``4 (a (k + 1) n_rays + b k n_voxels)``."""
        return tuple(self.memory_factors.get(backend, self.DEFAULT_MEMORY_FACTORS))

    def __repr__(self) -> str:
        return f"<method {self.name}: {self.Params.__name__}{self.Params.defaults()}>"


# ----------------------------------------------------------------------------- the registry

METHODS: dict[str, Method] = {}


def canonical_name(name: str) -> str:
    """The registry's spelling of a method name: ``"fused-tv"`` -> ``"fused_tv"``."""
    if not isinstance(name, str):
        raise ValueError(f"a method name is a string, got {name!r}")
    return name.strip().replace("-", "_")


def register(method: Method, *, replace: bool = False) -> Method:
    """Make ``method`` available to the pipeline, the Dask runner, the CLI and the studies.

    Parameters
    ----------
    method : Method
        An instance; its ``name`` must be canonical (underscores) and new.
    replace : bool
        Allow replacing a registered method of the same name.

    Returns
    -------
    Method
        ``method`` itself.
    """
    if not isinstance(method, Method):
        raise ValueError(f"register takes a Method instance, got {method!r}")
    if not method.name or canonical_name(method.name) != method.name:
        raise ValueError(f"a method name must be non-empty with underscores, not hyphens: {method.name!r}")
    if not (isinstance(method.Params, type) and issubclass(method.Params, MethodParams)
            and dataclasses.is_dataclass(method.Params)):
        raise ValueError(f"method {method.name!r}: Params must be a MethodParams dataclass")
    unknown = sorted(set(method.default_grid) - set(method.Params.names()) - {"n"})
    if unknown:
        raise ValueError(f"method {method.name!r}: grid names {unknown} are not parameters")
    if extra := sorted(set(method.rule_grid) - set(method.default_grid)):
        raise ValueError(f"method {method.name!r}: rule_grid names {extra} are not in its default_grid")
    if method.name in METHODS and not replace:
        raise ValueError(f"method {method.name!r} is registered already")
    METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove a registered method (e.g. one a test added)."""
    METHODS.pop(canonical_name(name), None)


def get_method(name: str) -> Method:
    """The registered method ``name`` (hyphens work: ``"fused-tv"``).

    Raises
    ------
    ValueError
        No such method; the message lists the registered ones.
    """
    key = canonical_name(name)
    try:
        return METHODS[key]
    except KeyError:
        raise ValueError(f"unknown reconstruction method {name!r}; available: {sorted(METHODS)}") from None


def method_names() -> tuple[str, ...]:
    """Registered method names, in registration order."""
    return tuple(METHODS)
