"""Parsing the method and run arguments of ``chemtomo reconstruct`` into the registry's terms.

Defaults shown in the help come from the method registry; ``-n``, ``--param``,
``--auto`` and ``--auto-grid`` become each method's validated parameters.
"""

from __future__ import annotations


def _defaults_text(name: str) -> str:
    """``"default eds_sirt 100, hebt_sirt 100"``: the registry's defaults of ``name`` per method."""
    from chemtomo.reconstruct import get_method, method_names

    have = [(n, get_method(n).Params.defaults()[name]) for n in method_names()
            if name in get_method(n).Params.names()]
    return "default " + ", ".join(f"{n} {v}" for n, v in have) if have else "no method has it"


def grid_names() -> list[str]:
    """Every candidate name of the registered methods' automatic rules."""
    from chemtomo.reconstruct import get_method, method_names

    return sorted({k for n in method_names() for k in get_method(n).default_grid})


def parse_pad(text: str):
    """The ``--pad`` value: ``"auto"`` or a number of pixels (int >= 0).

    Raises
    ------
    ValueError
        ``text`` is neither ``auto`` nor a non-negative integer.
    """
    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        v = int(text)
    except ValueError:
        raise ValueError(f"--pad takes a number of pixels or 'auto', got {text!r}") from None
    if v < 0:
        raise ValueError(f"--pad must be >= 0, got {v}")
    return v


def parse_angle_range(text: str):
    """``"-50:50:5"`` -> [-50, -45, ..., 50]; or a comma/space separated list."""
    import numpy as np

    t = text.strip()
    if ":" in t:
        parts = t.split(":")
        if len(parts) != 3:
            raise ValueError(f"--tomviz-angles takes START:STOP:STEP (e.g. -50:50:5), got {text!r}")
        a, b, st = (float(x) for x in parts)
        if st == 0 or (b - a) / st < 0:
            raise ValueError(f"--tomviz-angles {text!r}: STEP must be non-zero and go from START to STOP")
        return np.arange(a, b + st / 2, st).tolist()
    return [float(x) for x in t.replace(",", " ").split()]


def parse_iterations(items: list[str] | None) -> dict:
    """``["100", "fused_tv=300"]`` -> ``{"default": 100, "fused_tv": 300}`` (no entry: the method's default)."""
    from chemtomo.reconstruct import canonical_name

    out: dict = {}
    for it in items or ():
        key, _, val = it.rpartition("=")
        key = canonical_name(key) if key else "default"
        try:
            n = int(val)
        except ValueError:
            raise ValueError(f"--iterations takes N or METHOD=N (e.g. 100 or fused_tv=300), got {it!r}") from None
        if n < 1:
            raise ValueError(f"the number of iterations must be a positive integer, got {it!r}")
        out[key] = n
    return out


def auto_methods(args, methods) -> list[str]:
    """The methods whose parameters ``--auto`` chooses: all with a bare ``--auto``, else those named."""
    from chemtomo.reconstruct import canonical_name

    if args.auto is None:
        return []
    named = [canonical_name(m) for m in args.auto]
    unknown = [m for m in named if m not in methods]
    if unknown:
        raise ValueError(f"--auto names {unknown}, which are not among the methods run ({methods})")
    return named or list(methods)


def parse_auto_grid(items: list[str]) -> dict:
    """``["mu=0.02,0.04"]`` -> ``{"mu": (0.02, 0.04)}`` (``n`` as integers)."""
    names = grid_names()
    out = {}
    for it in items:
        name, _, vals = it.partition("=")
        if name not in names or not vals:
            raise ValueError(f"--auto-grid takes NAME=V1,V2,... with NAME one of {names}, got {it!r}")
        try:
            out[name] = tuple((int if name == "n" else float)(v) for v in vals.split(","))
        except ValueError:
            raise ValueError(f"--auto-grid {it!r}: the values must be numbers") from None
    return out


def auto_grids(items: list[str], methods) -> dict | None:
    """Per method, the ``--auto-grid`` candidates its rule takes (a name no method takes is an error)."""
    from chemtomo.reconstruct import get_method

    grid = parse_auto_grid(items)
    if not grid:
        return None
    out = {m: {k: v for k, v in grid.items() if k in get_method(m).default_grid} for m in methods}
    unused = sorted(set(grid) - {k for g in out.values() for k in g})
    if unused:
        raise ValueError(f"--auto-grid {unused}: no rule of the methods run ({list(methods)}) takes it")
    return out


def parse_value(text: str):
    """A ``--param`` value: int, float, true/false, none, else the text."""
    t = text.strip()
    low = t.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for kind in (int, float):
        try:
            return kind(t)
        except ValueError:
            pass
    return t


def _parameters_of(methods) -> str:
    """``"theirs are eds_sirt: ['n_iter']; ..."``: the parameters of each method, for a message."""
    from chemtomo.reconstruct import get_method

    return "theirs are " + "; ".join(f"{m}: {list(get_method(m).Params.names())}" for m in methods)


def method_params(args, methods) -> dict[str, dict]:
    """Per method, the parameters given on the command line (validated by the registry).

    ``-n`` (all or per method), ``--alpha`` and ``--mu`` (for the methods that have them;
    one that no method run has is an error naming the methods and their parameters),
    ``--param NAME=VALUE`` (every method run that has NAME; a name none has is an error)
    and ``--param METHOD.NAME=VALUE`` (that method; an unknown name is an error).

    Raises
    ------
    ValueError
        ``-n`` naming a method not run; ``--alpha``, ``--mu`` or ``--param NAME``
        that no method run takes; a value the method's parameters refuse.
    """
    from chemtomo.reconstruct import canonical_name, get_method

    iters = parse_iterations(args.iterations)
    stray = sorted(set(iters) - {"default"} - set(methods))
    if stray:  # a misspelt or absent method would otherwise keep its default silently
        raise ValueError(f"--iterations names {stray}, which are not among the methods run ({list(methods)})")
    out: dict[str, dict] = {}
    for m in methods:
        names = get_method(m).Params.names()
        given = {}
        n = iters.get(m, iters.get("default"))
        if n is not None:
            given["n_iter"] = n
        for name in ("alpha", "mu"):
            if getattr(args, name, None) is not None and name in names:
                given[name] = float(getattr(args, name))
        out[m] = given
    for name in ("alpha", "mu"):  # a value no method run takes would otherwise be ignored silently
        if getattr(args, name, None) is not None and not any(name in get_method(m).Params.names() for m in methods):
            raise ValueError(f"--{name} {getattr(args, name):g}: no method run has a parameter {name!r}; "
                             + _parameters_of(methods))
    for it in getattr(args, "param", None) or ():
        key, sep, val = it.partition("=")
        if not sep or not key:
            raise ValueError(f"--param takes NAME=VALUE or METHOD.NAME=VALUE, got {it!r}")
        target, dot, name = key.rpartition(".")
        if dot:
            target = canonical_name(target)
            if target not in out:
                raise ValueError(f"--param {it!r}: method {target!r} is not among the methods run ({list(methods)})")
            get_method(target).Params.check_names([name], target)
            out[target][name] = parse_value(val)
        else:
            takers = [m for m in methods if name in get_method(m).Params.names()]
            if not takers:
                raise ValueError(f"--param {it!r}: no method run has a parameter {name!r}; " + _parameters_of(methods))
            for m in takers:
                out[m][name] = parse_value(val)
    for m, given in out.items():  # fail here, before any work
        get_method(m).params(given)
    return out


def given_options(args, flags) -> list[str]:
    """The flags among ``flags`` given on the command line: their value differs from the parser's default.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments; ``args._default_of`` (set by the subcommand's parser,
        ``p.set_defaults(_default_of=p.get_default)``) gives each default, else
        ``None``, ``False`` and ``[]`` count as not given.
    flags : iterable of str
        Long option names, e.g. ``"--no-rotation"`` (destination ``no_rotation``).

    Returns
    -------
    list of str
        The flags given, in the order of ``flags``.
    """
    default_of = getattr(args, "_default_of", None)
    out = []
    for flag in flags:
        dest = flag.lstrip("-").replace("-", "_")
        value = getattr(args, dest, None)
        if default_of is not None:
            given = value != default_of(dest)
        else:
            given = value not in (None, False, [])
        if given:
            out.append(flag)
    return out


def refuse_options(args, flags, route: str, applies_to: str) -> None:
    """Raise if any of ``flags`` was given: they do not apply to ``route``.

    Parameters
    ----------
    args : argparse.Namespace
    flags : iterable of str
        The options the route does not take.
    route : str
        The route, as the message names it (e.g. ``"a raw tilt series (positional inputs)"``).
    applies_to : str
        What the options apply to instead, for the message.

    Raises
    ------
    ValueError
        Naming the options given and the route.
    """
    given = given_options(args, flags)
    if given:
        verb, pron = ("does", "it applies") if len(given) == 1 else ("do", "they apply")
        raise ValueError(f"{', '.join(given)} {verb} not apply to {route}; {pron} to {applies_to}")


def check_raw_values(args) -> None:
    """Refuse values of the raw route's line-map options outside their range, naming the option.

    Raises
    ------
    ValueError
        ``--integration-width`` not a positive finite number, an ``--elements``
        entry that is not a chemical symbol, ``--bin`` below 1.
    """
    import math

    from chemtomo.physics import atomic_number

    w = args.integration_width
    if not (math.isfinite(w) and w > 0):
        raise ValueError(f"--integration-width must be a positive number of FWHMs, got {w:g}")
    for el in args.elements or ():
        try:
            atomic_number(el)
        except ValueError as exc:
            raise ValueError(f"--elements: {exc}") from None
    if args.bin < 1:
        raise ValueError(f"--bin must be an integer >= 1, got {args.bin}")


def check_dependent_options(args, route: str) -> None:
    """Refuse an option given without the one it depends on, or beside one that overrides it.

    Each of these would otherwise be ignored without a word (issue 12): the run
    would go on with a setting other than the one the user believes was used.

    Parameters
    ----------
    args : argparse.Namespace
        ``chemtomo reconstruct`` arguments.
    route : {"raw", "stacks", "haadf"}
        The route the run takes (raw tilt series, ``--eds`` stacks, ``--haadf`` alone).

    Raises
    ------
    FileNotFoundError
        ``--compare-tomviz`` names no file.
    ValueError
        ``--auto-grid`` without ``--auto``; ``--seed`` without ``--replicas``;
        ``--mask`` beside ``--threshold``; ``--resume`` without ``--store`` or
        with ``--overwrite``; ``--haadf-signal`` on the stack route without
        ``--haadf``; ``--tomviz-angles`` without ``--compare-tomviz``;
        ``--reference-line`` with ``--register none``, or it or a
        ``--quantify-lines`` entry not among ``--lines``; ``--replicas`` below 2;
        ``--export-kinds`` with
        ``--export none``; ``--map-units`` with neither exports nor signals;
        ``--beam-kev`` with a factor table (or ``paper`` at another energy than
        its Table 2); ``--efficiency`` with a factor table.
    """
    def given(flag):
        return bool(given_options(args, [flag]))

    pairs = [
        ("--auto-grid", "--auto", getattr(args, "auto", None) is None,
         "the candidates of the automatic rules: give --auto as well"),
        ("--seed", "--replicas", not getattr(args, "replicas", None),
         "the seed of the bootstrap's Poisson replicas"),
        ("--resume", "--store", not getattr(args, "store", None), "it continues the run in a store"),
        ("--tomviz-angles", "--compare-tomviz", route == "raw" and not getattr(args, "compare_tomviz", None),
         "the angles of the tomviz alignment file compared"),
        ("--haadf-signal", "--haadf", route == "stacks" and not getattr(args, "haadf", None),
         "which image of the --haadf file is used as HAADF"),
    ]
    for flag, needs, missing, what in pairs:
        if missing and given(flag):
            raise ValueError(f"{flag} needs {needs} ({what}); without it {flag} would be ignored")
    replicas = getattr(args, "replicas", None)
    if replicas is not None and replicas < 2:
        raise ValueError(f"--replicas must be an integer >= 2 (the bootstrap's Poisson replicas), got {replicas}")
    if route == "raw":  # the raw route finds these only after minutes of line maps and alignment
        lines = list(args.lines or ())
        for flag, names in (("--reference-line", [args.reference_line] if args.reference_line else []),
                            ("--quantify-lines", list(args.quantify_lines or ()))):
            stray = [n for n in names if n not in lines]
            if lines and stray:
                raise ValueError(f"{flag} {stray} {'is' if len(stray) == 1 else 'are'} not among the --lines "
                                 f"{lines}")
        if args.compare_tomviz:
            from pathlib import Path

            if not Path(args.compare_tomviz).is_file():
                raise FileNotFoundError(f"--compare-tomviz: no such file: {args.compare_tomviz}")
    if getattr(args, "threshold", None) is not None and given("--mask"):
        raise ValueError("--threshold fixes the mask threshold, replacing the --mask method: give one of them")
    if getattr(args, "resume", False) and getattr(args, "overwrite", False):
        raise ValueError("--resume continues the store and --overwrite replaces it: give one of them")
    if route == "raw" and args.register == "none" and given("--reference-line"):
        raise ValueError("--reference-line is the map the HAADF is registered to; with --register none there is "
                         "no registration")
    exports = [e for e in getattr(args, "export", ()) if e != "none"]
    if not exports and given("--export-kinds") and route != "haadf":
        raise ValueError("--export-kinds chooses the volumes of the --export stacks; --export none writes none")
    if not exports and getattr(args, "signals", "none") == "none" and given("--map-units"):
        raise ValueError("--map-units applies to the --export stacks and --signals; this run writes neither "
                         "(result.h5 is always per nm)")
    check_factor_options(args)


def check_factor_options(args) -> None:
    """Refuse ``--beam-kev`` and ``--efficiency`` where the ``--factors`` given do not use them.

    ``physics`` uses both; ``paper`` (the paper's Table 2, at its own beam energy per
    line) uses ``--efficiency`` and accepts only a ``--beam-kev`` that is one of
    the table's; a factor table (file) holds both already.

    Raises
    ------
    ValueError
        Naming the option, the factors and what to do.
    """
    spec = getattr(args, "factors", "physics")
    if spec in (None, "physics"):
        return
    beam = getattr(args, "beam_kev", None)
    if spec == "paper":
        from chemtomo.physics.presets import TABLE2

        energies = sorted({v[1] for v in TABLE2.values()})
        if beam is not None and beam not in energies:
            raise ValueError(f"--beam-kev {beam:g}: --factors paper is the paper's Table 2, given at "
                             f"{', '.join(f'{e:g}' for e in energies)} keV (per line); leave --beam-kev out, or "
                             "use --factors physics to compute the factors at your beam energy")
        return
    stray = [f for f in ("--beam-kev", "--efficiency") if given_options(args, [f])]
    if stray:
        raise ValueError(f"{', '.join(stray)} {'does' if len(stray) == 1 else 'do'} not apply to a factor table "
                         f"(--factors {spec}): the table holds the factors with its beam energy and detector "
                         "efficiency; leave them out, or use --factors physics")


def interval_option(args, method: str) -> str:
    """The bootstrap's interval method of ``--interval`` for ``method``, checked before any work.

    Parameters
    ----------
    args : argparse.Namespace
        ``chemtomo reconstruct`` arguments (``interval``, ``bias``).
    method : str
        The registered method run.

    Returns
    -------
    str
        One of :data:`~chemtomo.reconstruct.bootstrap.INTERVAL_METHODS`: ``--interval`` when
        given, else ``"bias_widened"`` with ``--bias`` and ``"percentile"`` without.

    Raises
    ------
    ValueError
        A ``bias_*`` interval without ``--bias``; ``bias_scaled`` for a method without a
        calibrated scale (one not in :data:`~chemtomo.reconstruct.bootstrap.BIAS_SCALES`).
    """
    from chemtomo.reconstruct.bootstrap import BIAS_SCALES

    how = getattr(args, "interval", None) or ("bias_widened" if args.bias else "percentile")
    if how.startswith("bias") and not args.bias:
        raise ValueError(f"--interval {how} needs --bias (the plug-in bias estimate it widens by); "
                         "without it use percentile or basic")
    if how == "bias_scaled" and method not in BIAS_SCALES:
        raise ValueError(f"--interval bias_scaled with --method {method}: the 'bias_scaled' interval has no "
                         f"calibrated scale for {method!r} (calibrated: {sorted(BIAS_SCALES)}): use --interval "
                         "bias_calibrated (its widening from the data alone)")
    return how
