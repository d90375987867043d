"""The volumes of a result, each named, titled and with its units: what every writer and reader of results shows.

One list (:func:`result_volume_entries`) feeds the HyperSpy signals
(:mod:`.signals`), the TIFF/MRC exports (:mod:`.export`) and the napari
reader (:mod:`.napari_reader`), so a volume has the same name (``weight_Fe``),
title (``"Fe weight fraction"``), units and voxel size in all of them.
A result is a :class:`chemtomo.pipeline.VolumeResult`, a
:func:`chemtomo.io.read_result` dict, the path of a result file, or a
:class:`chemtomo.pipeline.uncertainty.Uncertainty` (its result, with the
uncertainty).

Besides :data:`~chemtomo.io.result.VOLUME_KINDS`, the standard errors of a result
with an uncertainty are volumes of kinds :data:`UNCERTAINTY_KINDS`
(``se_weight_<el>``: the bootstrap standard error of the weight fraction); a
result without one has none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .result import (
    AXIS_DESCRIPTION,
    AXIS_NAMES,
    MAP_UNITS_NOTE,
    VOLUME_KINDS,
    check_map_units,
    convert_map,
    read_result,
    value_units,
    volume_quantity,
    volume_title,
)
from .uncertainty import uncertainty_dict

#: Per-voxel standard errors (of the bootstrap) a result with an uncertainty holds.
UNCERTAINTY_KINDS = ("se_maps", "se_weight", "se_atomic")


@dataclass
class VolumeEntry:
    """One named volume of a result.

    Attributes
    ----------
    kind : {"maps", "weight", "atomic", "mask", "haadf"}
    name : str
        The line (maps), the element (fractions), "" (mask, HAADF).
    key : str
        File-name stem: ``maps_<line>``, ``weight_<el>``, ``atomic_<el>``, ``mask``, ``haadf``.
    data : ndarray (y, z, x)
        float32 (uint8 for the mask), in ``units``.
    title, quantity, units : str
    """

    kind: str
    name: str
    key: str
    data: np.ndarray
    title: str
    quantity: str
    units: str


@dataclass
class ResultSummary:
    """What every volume of a result shares: voxel size, method, parameters, provenance.

    Attributes
    ----------
    pixel_nm : float
    method : str
    parameters, provenance : dict
    lines, elements : list of str
    response_ratios : dict line -> r
    r2 : float or None
    map_units : str
    """

    pixel_nm: float
    method: str
    parameters: dict
    provenance: dict
    lines: list
    elements: list
    response_ratios: dict
    r2: float | None
    map_units: str

    def metadata(self) -> dict:
        """The ``chemtomo`` metadata node (JSON text for the nested parts)."""
        from .provenance import to_json

        return {"method": self.method, "pixel_nm": self.pixel_nm, "map_units": self.map_units,
                "map_units_note": MAP_UNITS_NOTE, "axes": ",".join(AXIS_NAMES), "axes_description": AXIS_DESCRIPTION,
                "lines": ",".join(self.lines), "elements": ",".join(self.elements),
                "response_ratios": to_json(self.response_ratios), "r2": float(self.r2) if self.r2 is not None else -1.0,
                "parameters": to_json(self.parameters), "provenance": to_json(self.provenance)}


def _as_dict(result, provenance: dict | None) -> dict:
    """A read_result-like dict (maps per nm) from a path, a dict, a VolumeResult or an Uncertainty."""
    if hasattr(result, "bootstrap") and hasattr(result, "result"):  # an Uncertainty
        res = _as_dict(result.result, provenance)
        return {**res, "uncertainty": uncertainty_dict(result)}
    if isinstance(result, (str, Path)):
        res = read_result(result)
    elif isinstance(result, dict):
        res = result
        if res.get("map_units", "per_nm") != "per_nm":
            raise ValueError("give a result read with map_units='per_nm' (the stored convention); "
                             f"got {res.get('map_units')!r}")
    else:
        comp = getattr(result, "composition", None)
        rr = result.response_ratios
        haadf = None
        for attr in ("haadf_volume", "haadf"):
            v = getattr(result, attr, None)
            if v is not None and np.ndim(v) >= 2:
                haadf = v
                break
        res = {"maps": {ln: result.maps[i] for i, ln in enumerate(result.lines)},
               "weight": {el: comp.weight[i] for i, el in enumerate(result.elements)} if comp is not None else {},
               "atomic": {el: comp.atomic[i] for i, el in enumerate(result.elements)} if comp is not None else {},
               "mask": comp.mask if comp is not None else None, "haadf": haadf,
               "response_ratios": ({ln: float(r) for ln, r in zip(rr.lines, rr.r, strict=True)}
                                   if rr is not None else {}),
               "r2": float(rr.r2) if rr is not None else None,
               "parameters": dict(result.parameters or {}), "provenance": {},
               "pixel_nm": float(result.geometry.grid_pixel_nm)}
    if provenance is not None:
        res = {**res, "provenance": provenance}
    return res


def result_volume_entries(result, kinds: Iterable[str] = VOLUME_KINDS, *, map_units: str = "per_nm",
                          provenance: dict | None = None) -> tuple[list[VolumeEntry], ResultSummary]:
    """The named volumes of a result, in a fixed order (maps, weight, atomic, mask, haadf).

    Parameters
    ----------
    result : VolumeResult, dict or path
        A result, a :func:`~chemtomo.io.read_result` dict (maps per nm) or a result file.
    kinds : iterable of {"maps", "weight", "atomic", "mask", "haadf", "se_maps", "se_weight", "se_atomic"}
        Which volumes; a kind the result does not hold (HAADF, the standard errors
        of a result without an uncertainty) is skipped.
    map_units : {"per_nm", "per_pixel"}
        Maps and HAADF per nm of path (chemtomo) or per voxel (ASTRA/etspy/tomviz).
    provenance : dict, optional
        Replaces the result's provenance (a VolumeResult has none).

    Returns
    -------
    entries : list of VolumeEntry
    summary : ResultSummary

    Raises
    ------
    ValueError
        An unknown kind or map_units.
    """
    kinds = list(kinds)
    bad = [k for k in kinds if k not in VOLUME_KINDS + UNCERTAINTY_KINDS]
    if bad:
        raise ValueError(f"volume kinds must be among {VOLUME_KINDS + UNCERTAINTY_KINDS}, got {bad}")
    check_map_units(map_units)
    res = _as_dict(result, provenance)
    px = float(res["pixel_nm"])
    params = res.get("parameters") or {}
    method = str(params.get("method", ""))
    out = []
    for kind in VOLUME_KINDS:
        if kind not in kinds:
            continue
        if kind in ("maps", "weight", "atomic"):
            items = list(res.get(kind, {}).items())
        else:
            items = [("", res.get(kind))] if res.get(kind) is not None else []
        for name, vol in items:
            if kind in ("maps", "haadf"):
                data = np.asarray(convert_map(np.asarray(vol, dtype=np.float32), px, map_units), dtype=np.float32)
            elif kind == "mask":
                data = np.asarray(vol, dtype=np.uint8)
            else:
                data = np.asarray(vol, dtype=np.float32)
            key = f"{kind}_{name}" if name else kind
            out.append(VolumeEntry(kind, name, key, data, volume_title(kind, name, method),
                                   volume_quantity(kind, name, map_units), value_units(kind, map_units)))
    out += _se_entries(res, kinds, px, method, map_units)
    summary = ResultSummary(px, method, params, res.get("provenance") or {}, list(res.get("maps", {})),
                            list(res.get("weight", {})), dict(res.get("response_ratios") or {}), res.get("r2"),
                            map_units)
    return out, summary


def _se_entries(res: dict, kinds: list[str], px: float, method: str, map_units: str) -> list[VolumeEntry]:
    """The bootstrap standard-error volumes of ``kinds`` (``se_weight_<el>``, ...), if the result has them."""
    unc = res.get("uncertainty")
    boot = (unc or {}).get("bootstrap")
    out = []
    if not boot:
        return out
    for kind in UNCERTAINTY_KINDS:
        if kind not in kinds:
            continue
        base = kind[3:]
        for name, stats in boot.get(base, {}).items():
            data = np.asarray(stats["se"], dtype=np.float32)
            if base == "maps":
                data = np.asarray(convert_map(data, px, map_units), dtype=np.float32)
            title = f"{volume_title(base, name, method if base == 'maps' else '')}: standard error"
            quantity = f"bootstrap standard error of the {volume_quantity(base, name, map_units)}"
            out.append(VolumeEntry(kind, name, f"{kind}_{name}", data, title, quantity,
                                   value_units(base, map_units)))
    return out

