"""The ``/absorption`` group of a result file: what the absorption correction did (issue 14).

Layout (written by :func:`chemtomo.io.result.write_result` with ``absorption=``;
volumes ``(y, z, x)`` float32, labelled as the other volumes: ``axes``,
dimension labels, ``axis_units``, ``pixel_nm``, ``scale_nm``, ``units``,
``quantity``, ``long_name``, ``kind``)::

    /absorption
        attrs: detectors (JSON: name, elevation_deg, azimuth_deg, solid_angle_sr),
               tol, max_outer, outer_iterations, converged, changes (JSON list),
               density_source ("estimated from the maps" or "given"), mode, method
        /transmission/<line>          transmission of the line's X-rays towards the
                                      detectors (solid-angle-weighted), mean over
                                      the tilts, of the last correction (units 1)
        /uncorrected/weight/<element> weight fraction of the uncorrected
                                      reconstruction (0 outside its mask)
        /density                      density of the last correction (g/cm^3)

The primary ``/maps`` and ``/fractions`` of the file are the corrected ones.
"""

from __future__ import annotations

import json

import numpy as np

from ..geometry import columns_to_volume
from .provenance import to_json as _json

__all__ = ["absorption_dict", "read_absorption", "write_absorption"]

_ATTRS = ("tol", "max_outer", "outer_iterations", "converged", "density_source", "mode", "method")


def absorption_dict(absorption) -> dict:
    """The file's view of an absorption-corrected run, from its result (or such a dict).

    Parameters
    ----------
    absorption : AbsorptionResult or dict
        :func:`chemtomo.pipeline.absorption.reconstruct_absorption_corrected`'s
        result, or a dict as this function returns (passed through).

    Returns
    -------
    dict
        ``detectors`` (dict), ``tol``, ``max_outer``, ``outer_iterations``,
        ``converged``, ``changes`` (list), ``density_source``, ``mode``,
        ``method``, ``transmission`` (line -> ndarray (y, z, x): mean over the
        tilts), ``uncorrected_weight`` (element -> ndarray (y, z, x)),
        ``density_g_cm3`` (ndarray (y, z, x)).
    """
    if isinstance(absorption, dict):
        return absorption
    a = absorption
    params = dict(a.parameters or {})
    n_grid = int(a.corrected.geometry.n_grid)
    trans = {ln: columns_to_volume(np.asarray(t, dtype=np.float32).mean(axis=0), n_grid)
             for ln, t in a.transmissions.items()}
    unc = a.uncorrected
    weight = {el: np.asarray(unc.composition.weight[i], dtype=np.float32) for i, el in enumerate(unc.elements)}
    return {"detectors": a.detectors.key(), "tol": float(params.get("tol", np.nan)),
            "max_outer": int(params.get("max_outer", -1)), "outer_iterations": int(a.outer_iterations),
            "converged": bool(a.converged), "changes": [float(c) for c in a.changes],
            "density_source": str(params.get("density", "")), "mode": str(params.get("mode", "")),
            "method": str(params.get("method", "")), "transmission": trans, "uncorrected_weight": weight,
            "density_g_cm3": np.asarray(a.density_g_cm3, dtype=np.float32)}


def write_absorption(f, absorption, px: float, label_volume, opts: dict) -> None:
    """Write the ``/absorption`` group (module docstring) into the open HDF5 file ``f``.

    Parameters
    ----------
    f : h5py.File
    absorption : AbsorptionResult or dict
        See :func:`absorption_dict`.
    px : float
        Voxel size in nm.
    label_volume : callable
        :func:`chemtomo.io.result.label_volume` (passed in: no import cycle).
    opts : dict
        Dataset creation options (compression).
    """
    a = absorption_dict(absorption)
    g = f.create_group("absorption")
    g.attrs["detectors"] = _json(a["detectors"])
    g.attrs["changes"] = _json(a["changes"])
    for k in _ATTRS:
        g.attrs[k] = a[k]
    for line, t in a["transmission"].items():
        ds = g.create_dataset(f"transmission/{line}", data=np.asarray(t, dtype=np.float32), **opts)
        label_volume(ds, "mask", "", px)
        ds.attrs["kind"] = "transmission"
        ds.attrs["units"] = "1"
        ds.attrs["quantity"] = f"{line} X-ray transmission towards the detectors, mean over the tilts"
        ds.attrs["long_name"] = f"{line} transmission"
    for el, w in a["uncorrected_weight"].items():
        ds = g.create_dataset(f"uncorrected/weight/{el}", data=np.asarray(w, dtype=np.float32), **opts)
        label_volume(ds, "weight", el, px)
        ds.attrs["quantity"] = f"{el} weight fraction without absorption correction"
        ds.attrs["long_name"] = f"{el} weight fraction (uncorrected)"
    ds = g.create_dataset("density", data=np.asarray(a["density_g_cm3"], dtype=np.float32), **opts)
    label_volume(ds, "mask", "", px)
    ds.attrs["kind"] = "density"
    ds.attrs["units"] = "g/cm^3"
    ds.attrs["quantity"] = f"density used by the last absorption correction ({a['density_source']})"
    ds.attrs["long_name"] = "density"


def read_absorption(f) -> dict | None:
    """The ``/absorption`` group of the open HDF5 file ``f`` as :func:`absorption_dict` data, or None.

    Parameters
    ----------
    f : h5py.File

    Returns
    -------
    dict or None
        None when the file has no ``/absorption`` group (files written without
        the correction, and older files).
    """
    if "absorption" not in f:
        return None
    g = f["absorption"]
    out: dict = {}
    for k in _ATTRS:
        v = g.attrs[k]
        out[k] = v.item() if hasattr(v, "item") else v
        if isinstance(out[k], bytes):
            out[k] = out[k].decode()
    out["converged"] = bool(out["converged"])
    out["detectors"] = json.loads(g.attrs["detectors"])
    out["changes"] = json.loads(g.attrs["changes"])
    out["transmission"] = {k: g["transmission"][k][()] for k in (g["transmission"] if "transmission" in g else [])}
    w = g["uncorrected/weight"] if "uncorrected/weight" in g else {}
    out["uncorrected_weight"] = {k: w[k][()] for k in w}
    out["density_g_cm3"] = g["density"][()] if "density" in g else None
    return out
