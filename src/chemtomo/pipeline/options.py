"""The options of the experimental path's reconstruction and output stages, and their routing.

Each stage of :func:`chemtomo.pipeline.experimental.run_experimental` takes
one frozen options object, validated once when it is made:

- :class:`chemtomo.preprocess.raw.LineMapOptions` - reading the files and the line windows;
- :class:`chemtomo.preprocess.series.PreprocessOptions` - registration,
  alignment, binning, shadowing, filter, padding;
- :class:`ReconstructionOptions` - factors, methods and their parameters,
  mask, slice chunks, engine;
- :class:`OutputOptions` - stacks, figures, the tomviz comparison.

The CLI builds these objects; :func:`route_overrides` lets a Python caller
give any of their fields by name instead (``run_experimental(..., bin_factor=1,
n_iter=20)``): every field name belongs to exactly one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .._options import option_names
from ..physics import DETECTOR_EFFICIENCY

#: The methods of a raw-series run when none are named.
DEFAULT_METHODS = ("eds_sirt", "hebt_sirt")
MASK_METHODS = ("esf", "otsu", "multiotsu")


@dataclass(frozen=True)
class ReconstructionOptions:
    """What is reconstructed and how: factors, methods, their parameters, mask, chunks, engine.

    Attributes
    ----------
    factors : "physics", "paper", path, or Factors
        The factor specification (:func:`chemtomo.io.factors.resolve_factors`;
        default ``"physics"``, computed at the beam energy).
    beam_kev : float, optional
        Beam energy (keV) for the physics factors (default: the files').
    efficiency : float
        Flat detector efficiency (0..1] for the physics and paper factors
        (default :data:`chemtomo.physics.DETECTOR_EFFICIENCY`).
    methods : sequence of str
        Reconstruction methods (default eds_sirt, hebt_sirt); the last bimodal
        one (else the last) is the primary result written at the top level.
    n_iter : int or dict, optional
        Iterations, for every method or method -> count (key ``"default"`` for
        the rest); None: each method's own default (its registered parameters).
    alpha : float, optional
        HAADF weight, for the methods that have one; None: their registered default.
    quantify_lines : sequence of str, optional
        Lines to quantify (default all; the others are reconstructed, not quantified).
    mask_method : {"esf", "otsu", "multiotsu"}
        Particle mask (default ``"esf"``).
    threshold : float, optional
        A fixed mask threshold instead of ``mask_method``.
    chunk_slices : int or None
        Slices per batched solve (bounds memory; default 32).
    backend : str, optional
        Projector backend (default: the engine's).
    engine_options : dict, optional
        Passed to :func:`chemtomo.pipeline.reconstruct_series` (``scheduler``,
        ``store``, ``resume``, ``memory_budget_gb``, ...).
    auto : bool or sequence of str
        Choose the parameters of every method (True) or of the methods named from the data.
    method_options : dict, optional
        Method -> extra options (e.g. ``{"fused_tv": {"mu": 0.2}}``).
    auto_grid : dict, optional
        Method -> candidates of its automatic rule (e.g. ``{"fused_tv": {"mu": [0.02, 0.04]}}``).
    replicas : int, optional
        Bootstrap replicas of every method's reconstruction (>= 2; None: no bootstrap;
        :func:`chemtomo.pipeline.experimental.bootstrap_experimental`).
    seed : int
        Seed of the replicas.
    absorption : dict, optional
        Correct every method for X-ray absorption in the specimen (issue 14;
        :mod:`chemtomo.pipeline.raw_absorption`): keyword arguments of
        :func:`chemtomo.pipeline.absorption.reconstruct_absorption_corrected`
        (``detectors``: a preset name, ``"file"`` for the files' metadata, or a
        :class:`~chemtomo.physics.DetectorGeometry`; ``density_g_cm3``, ``tol``,
        ``max_outer``), plus ``elevation_deg``, ``azimuth_deg``, ``solid_angle_sr``
        for the facts the files lack with ``"file"``. None (default): no correction.

    Raises
    ------
    ValueError
        On construction: no method, an unknown mask method, an efficiency
        outside (0, 1], a beam energy or chunk size that is not positive.
    """

    factors: object = "physics"
    beam_kev: float | None = None
    efficiency: float = DETECTOR_EFFICIENCY
    methods: Sequence[str] = DEFAULT_METHODS
    n_iter: int | dict | None = None
    alpha: float | None = None
    quantify_lines: Sequence[str] | None = None
    mask_method: str = "esf"
    threshold: float | None = None
    chunk_slices: int | None = 32
    backend: str | None = None
    engine_options: dict | None = None
    auto: bool | Sequence[str] = False
    method_options: dict | None = None
    auto_grid: dict | None = None
    replicas: int | None = None
    seed: int = 0
    absorption: dict | None = None

    def __post_init__(self):
        if self.absorption is not None:
            from .raw_absorption import check_absorption_options

            check_absorption_options(self.absorption)
            if self.replicas is not None:
                raise ValueError("absorption does not combine with replicas (the bootstrap of an absorption-"
                                 "corrected reconstruction is not supported yet)")
        if isinstance(self.methods, str):
            raise ValueError(f"methods is a sequence of method names, got the string {self.methods!r}")
        if not list(self.methods):
            raise ValueError("give at least one method (eds_sirt, hebt_sirt)")
        if self.mask_method not in MASK_METHODS:
            raise ValueError(f"mask_method must be one of {MASK_METHODS}, got {self.mask_method!r}")
        if not 0 < float(self.efficiency) <= 1:
            raise ValueError(f"efficiency must be in (0, 1], got {self.efficiency!r}")
        if self.beam_kev is not None and not float(self.beam_kev) > 0:
            raise ValueError(f"beam_kev must be > 0 (keV), got {self.beam_kev!r}")
        if self.threshold is not None:
            from ..quantify import check_threshold

            check_threshold(self.threshold)  # finite, before any work
        if self.replicas is not None:
            from ..reconstruct.bootstrap import check_replicas

            check_replicas(self.replicas)
        if isinstance(self.seed, bool) or int(self.seed) < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.chunk_slices is not None and int(self.chunk_slices) < 1:
            raise ValueError(f"chunk_slices must be >= 1 or None, got {self.chunk_slices!r}")
        self._check_methods()

    def _check_methods(self) -> None:
        """Method names canonical (``fused-tv`` -> ``fused_tv``) wherever they key an option; unknown ones refused.

        Without this, ``methods=["fused-tv"]`` ran while ``n_iter={"fused-tv": 300}``,
        ``method_options={"fused-tv": ...}``, ``auto=["fused-tv"]`` and ``auto_grid`` keyed
        by the hyphenated (or a misspelt) name were silently ignored.
        """
        from ..reconstruct import canonical_name, get_method

        methods = tuple(get_method(m).name for m in self.methods)  # an unknown method fails here
        object.__setattr__(self, "methods", methods)

        def keyed(field: str, value, extra=()):
            if value is None or not isinstance(value, dict):
                return value
            out = {}
            for key, v in value.items():
                name = key if key in extra else canonical_name(key)
                if name not in methods and name not in extra:
                    raise ValueError(f"{field} names {key!r}, which is not among the methods run {list(methods)}")
                out[name] = v
            return out

        object.__setattr__(self, "n_iter", keyed("n_iter", self.n_iter, extra=("default",)))
        options = keyed("method_options", self.method_options)
        for m, given in (options or {}).items():
            get_method(m).params(given)  # an unknown or bad parameter fails here, before any method runs
        object.__setattr__(self, "method_options", options)
        object.__setattr__(self, "auto_grid", keyed("auto_grid", self.auto_grid))
        if self.auto is not True and self.auto is not False:
            if isinstance(self.auto, str):
                raise ValueError(f"auto is True, False or a sequence of method names, got the string {self.auto!r}")
            auto = tuple(canonical_name(m) for m in self.auto or ())
            stray = [m for m in auto if m not in methods]
            if stray:
                raise ValueError(f"auto names {stray}, which are not among the methods run {list(methods)}")
            object.__setattr__(self, "auto", auto)


@dataclass(frozen=True)
class OutputOptions:
    """What a run writes beside ``result.h5``, and the alignment check it reports.

    Attributes
    ----------
    export : sequence of {"tiff", "ome-tiff", "mrc"}
        Stack formats of the primary method's volumes (default tiff; empty: none).
    export_kinds : sequence of {"maps", "weight", "atomic", "mask", "haadf"}
        Which volumes (default maps and weight fractions).
    figures : bool
        Draw the figures (default True).
    figure_processes : int, optional
        Processes that draw them (:func:`chemtomo.report.volume.draw_result_figures`);
        default None: two for a volume of a million voxels or more on a machine
        with two cores, else one. The figures are the same either way.
    signals : {"hspy", "zspy"} or None
        Also write every volume of the primary method as a HyperSpy signal in
        ``signals/`` (:func:`chemtomo.io.write_result_signals`; default None).
    map_units : {"per_nm", "per_pixel"}
        Maps in the exports and signals per nm of path (default) or per voxel
        (ASTRA/etspy/tomviz SIRT).
    compare_tomviz : path, optional
        A tomviz alignment JSON to compare the shifts with (written to
        ``/alignment/tomviz``); needs ``tomviz_angles_deg``.
    tomviz_angles_deg : sequence of float, optional
        The angles (degrees) of every entry of the tomviz file.

    Raises
    ------
    ValueError
        On construction: an unknown format or kind; ``compare_tomviz`` without its angles;
        ``figure_processes`` not an integer >= 1 or None.
    """

    export: Sequence[str] = ("tiff",)
    export_kinds: Sequence[str] = ("maps", "weight")
    figures: bool = True
    figure_processes: int | None = None
    signals: str | None = None
    map_units: str = "per_nm"
    compare_tomviz: object = None
    tomviz_angles_deg: Sequence[float] | None = None

    def __post_init__(self):
        from ..io.export import EXPORT_FORMATS, EXPORT_KINDS

        bad = [e for e in self.export if e not in EXPORT_FORMATS]
        if bad:
            raise ValueError(f"export formats {bad} are not among {EXPORT_FORMATS}")
        bad = [k for k in self.export_kinds if k not in EXPORT_KINDS]
        if bad:
            raise ValueError(f"export kinds {bad} are not among {EXPORT_KINDS}")
        from ..io.result import check_map_units
        from ..io.signals import SIGNAL_FORMATS

        if self.signals is not None and self.signals not in SIGNAL_FORMATS:
            raise ValueError(f"signals must be one of {SIGNAL_FORMATS} or None, got {self.signals!r}")
        check_map_units(self.map_units)
        if self.figure_processes is not None and (isinstance(self.figure_processes, bool)
                                                  or not isinstance(self.figure_processes, int)
                                                  or self.figure_processes < 1):
            raise ValueError(f"figure_processes must be an integer >= 1 or None (automatic), got "
                             f"{self.figure_processes!r}")
        if self.compare_tomviz is not None and self.tomviz_angles_deg is None:
            raise ValueError("compare_tomviz needs tomviz_angles_deg: the angles of every entry of the tomviz file")


def route_overrides(overrides: dict, stages: dict) -> dict[str, dict]:
    """Sort keyword options by the stage whose options class has a field of that name.

    Parameters
    ----------
    overrides : dict
        Field name -> value.
    stages : dict stage -> options class
        E.g. ``{"line_maps": LineMapOptions, "preprocess": PreprocessOptions, ...}``;
        no field name may occur in two classes.

    Returns
    -------
    dict stage -> dict
        The overrides of each stage (empty dicts for stages with none).

    Raises
    ------
    ValueError
        A name that no options class has (the message lists them all).
    """
    owner = {}
    for stage, cls in stages.items():
        for name in option_names(cls):
            if name in owner:
                raise RuntimeError(f"option {name!r} is a field of two stages ({owner[name]}, {stage})")
            owner[name] = stage
    unknown = sorted(set(overrides) - set(owner))
    if unknown:
        allowed = {stage: option_names(cls) for stage, cls in stages.items()}
        raise ValueError(f"unknown option(s) {unknown}; the stages take {allowed}")
    out: dict = {stage: {} for stage in stages}
    for name, value in overrides.items():
        out[owner[name]][name] = value
    return out


__all__ = ["DEFAULT_METHODS", "OutputOptions", "ReconstructionOptions", "route_overrides"]
