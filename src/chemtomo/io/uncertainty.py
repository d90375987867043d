"""The uncertainty of a result as plain data: what the result file's ``/uncertainty`` group holds.

:func:`uncertainty_dict` turns a :class:`chemtomo.pipeline.uncertainty.Uncertainty`
(duck-typed: this module imports numpy only, the pipeline is a layer above) into the
dict :func:`chemtomo.io.read_result` returns under ``"uncertainty"``::

    {"replicas": int, "seed": int, "interval": float, "interval_method": str, "source": "counts" | "model",
     "noise_factor": float, "haadf_sigma": float or None, "haadf_sigma_kind": str,
     "notes": [str], "seconds": {str: float}, "method": str,
     "bootstrap": {"maps": {line: {"se", "low", "high": ndarray (y, z, x)}},
                   "weight": {element: {...}}, "atomic": {element: {...}},
                   "regions": {region: {"maps" | "weight" | "atomic": {name: {"value", "mean", "se",
                                                                            "low", "high": float}}}}},
     "jackknife": the same as "bootstrap", or None}

Per-voxel arrays are float32 in the units of their volume (maps per nm of beam path,
fractions 1); ``low``/``high`` bound the central interval of probability ``interval``
(made as ``interval_method`` says: :data:`chemtomo.reconstruct.bootstrap.INTERVAL_METHODS`).
When the bootstrap estimated the bias (``bias=True``), each volume also holds ``"bias"``
(the plug-in estimate ``T(x) - x``) and each region ``"bias"`` and ``"bias_bound"`` (the
mean of its voxels' ``|bias|``).
:func:`region_rows` flattens the region table into rows (region, element, value, se,
low, high) for reports.
"""

from __future__ import annotations

import numpy as np

#: Per-voxel statistics stored for each volume.
STATISTICS = ("se", "low", "high")
#: Statistics of each region mean.
REGION_STATISTICS = ("value", "mean", "se", "low", "high")
#: Per-voxel statistics stored when the bootstrap estimated the bias (``bias=True``).
OPTIONAL_STATISTICS = ("bias",)
#: Region statistics stored when the bootstrap estimated the bias.
OPTIONAL_REGION_STATISTICS = ("bias", "bias_bound")
#: Quantities with an uncertainty.
QUANTITIES = ("maps", "weight", "atomic")
#: Spread sets a result may hold.
SPREAD_KINDS = ("bootstrap", "jackknife")


def _spread_set_dict(ss, lines: list[str], elements: list[str]) -> dict:
    out: dict = {}
    for q in QUANTITIES:
        names = lines if q == "maps" else elements
        s = getattr(ss, q)
        sts = STATISTICS + tuple(st for st in OPTIONAL_STATISTICS if getattr(s, st, None) is not None)
        out[q] = {n: {st: np.asarray(getattr(s, st)[i], np.float32) for st in sts}
                  for i, n in enumerate(names)}
    regions: dict = {}
    for region, group in (ss.regions or {}).items():
        regions[str(region)] = {}
        for q in QUANTITIES:
            names = lines if q == "maps" else elements
            s = group[q]
            sts = REGION_STATISTICS + tuple(st for st in OPTIONAL_REGION_STATISTICS
                                            if getattr(s, st, None) is not None)
            regions[str(region)][q] = {n: {st: float(np.asarray(getattr(s, st))[i]) for st in sts}
                                       for i, n in enumerate(names)}
    out["regions"] = regions
    return out


def uncertainty_dict(unc) -> dict:
    """An uncertainty as plain data (layout: module docstring).

    Parameters
    ----------
    unc : Uncertainty or dict
        A :class:`chemtomo.pipeline.uncertainty.Uncertainty`, or a dict already in
        this layout (returned as it is).

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        ``unc`` is neither.
    """
    if isinstance(unc, dict):
        return unc
    if not (hasattr(unc, "bootstrap") and hasattr(unc, "result")):
        raise ValueError(f"an uncertainty is an Uncertainty (bootstrap_uncertainty) or its dict, got {type(unc)!r}")
    res = unc.result
    lines, elements = list(res.lines), list(res.elements)
    sigma = unc.haadf_sigma
    if sigma is None:
        sigma_kind, sigma = "none", None
    elif np.ndim(sigma) == 0:
        sigma_kind, sigma = "constant", float(sigma)
    else:
        sigma_kind, sigma = "per_pixel_mean", float(np.mean(sigma))
    return {
        "replicas": int(unc.replicas), "seed": int(unc.seed), "interval": float(unc.interval),
        "source": str(unc.source), "noise_factor": float(unc.noise_factor), "haadf_sigma": sigma,
        "haadf_sigma_kind": sigma_kind, "notes": [str(n) for n in unc.notes],
        "seconds": {k: float(v) for k, v in (unc.seconds or {}).items()},
        "method": str((res.parameters or {}).get("method", "")),
        "interval_method": str(getattr(unc.bootstrap.weight, "method", "percentile")),
        "bootstrap": _spread_set_dict(unc.bootstrap, lines, elements),
        "jackknife": None if unc.jackknife is None else _spread_set_dict(unc.jackknife, lines, elements),
    }


def region_rows(unc, quantity: str = "weight", kind: str = "bootstrap") -> list[dict]:
    """The region table as rows: region, element (or line), value, mean, se, low, high, interval.

    Parameters
    ----------
    unc : Uncertainty or dict
        As :func:`uncertainty_dict` takes.
    quantity : {"weight", "atomic", "maps"}
    kind : {"bootstrap", "jackknife"}

    Returns
    -------
    list of dict
        One row per region and element, regions in stored order (empty when the
        spread set is absent).

    Raises
    ------
    ValueError
        An unknown quantity or kind.
    """
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {QUANTITIES}, got {quantity!r}")
    if kind not in SPREAD_KINDS:
        raise ValueError(f"kind must be one of {SPREAD_KINDS}, got {kind!r}")
    ud = uncertainty_dict(unc)
    ss = ud.get(kind)
    if not ss:
        return []
    rows = []
    for region, group in ss["regions"].items():
        for name, st in group[quantity].items():
            rows.append({"region": region, "element": name,
                         **{k: float(st[k]) for k in REGION_STATISTICS + OPTIONAL_REGION_STATISTICS if k in st},
                         "interval": float(ud["interval"])})
    return rows


__all__ = ["OPTIONAL_REGION_STATISTICS", "OPTIONAL_STATISTICS", "QUANTITIES", "REGION_STATISTICS", "SPREAD_KINDS",
           "STATISTICS", "region_rows", "uncertainty_dict"]
