"""The HDF5 result file: one layout other tools can rely on, every dataset labelled with its axes and units.

Layout (volumes are float32 ``(y, z, x)``: y the slices along the tilt axis
(the micrographs' rows), z along the beam at 0 degrees, x across the tilt
axis; a 2-D slice is one slice)::

    /maps/<line>                    reconstructed map of each X-ray line, per nm
                                    of beam path (see "Map units")
    /fractions/weight/<element>     weight fraction, 0 outside the mask
    /fractions/atomic/<element>     atomic fraction, 0 outside the mask
    /mask                           uint8 particle mask (1 inside)
    /haadf                          the HAADF volume, per nm (when the result has one)
    /response_ratios/<line>         fitted r_A (scalar); group attribute ``r2``
                                    (and ``basis``, what the fit was made on,
                                    for a HAADF at tilts of its own);
                                    dataset attribute ``theory`` where known
    /uncertainty                    (when written with one) the bootstrap's spread:
        /<spread>/<quantity>/<name>/{se,low,high}
                                    spread "bootstrap" (and "jackknife"), quantity
                                    "maps" (per line), "weight", "atomic" (per
                                    element): per-voxel standard error and central
                                    interval, labelled as the volume they qualify
                                    (plus attrs ``statistic``, ``interval``, ``spread``)
        /<spread> attrs: regions (JSON: region -> quantity -> name -> value, mean,
                         se, low, high), n_replicas
        attrs: replicas, seed, interval, source, noise_factor, haadf_sigma,
               haadf_sigma_kind, method, notes (JSON), seconds (JSON)
    /absorption                     (when written with one) the absorption
                                    correction: per-line transmissions (mean over
                                    tilts), the uncorrected weight fractions, the
                                    density and the outer loop's record; the
                                    primary maps and fractions are the corrected
                                    ones (layout: :mod:`chemtomo.io.absorption`)
    root attrs: format = "chemtomo-result", format_version, pixel_nm,
                axes = "slices,z,x" (format 1.0's name, kept), axis_names = "y,z,x",
                axis_units = "nm,nm,nm", map_units = "per_nm", map_units_note,
                parameters (JSON text), provenance (JSON text);
                haadf_angles_deg (float64 array, degrees) when the HAADF had tilts
                of its own (the EDS's are ``parameters["geometry"]["angles_deg"]``,
                the HAADF's ``parameters["haadf_geometry"]`` too)

Every volume dataset carries ``axes`` (``"y,z,x"``), HDF5 dimension labels
(``ds.dims[i].label``: y, z, x), ``axis_units`` (``"nm,nm,nm"``),
``pixel_nm`` and ``scale_nm`` (the voxel size along each axis), ``units``
(of the values: ``counts/nm``, ``1`` for fractions and the mask),
``quantity`` (what the values are, in words), ``long_name`` (the title
HyperSpy and napari show) and ``kind``.

Map units
---------
chemtomo's projector measures path lengths in nm, so a map holds the input
signal per nm of beam path. ASTRA, etspy and tomviz SIRT measure them in
voxels: their values are the chemtomo values times ``pixel_nm`` (the voxel
size). The file states it (``map_units``, ``map_units_note``);
:func:`read_result` (``map_units="per_pixel"``), the HyperSpy writer
(:func:`chemtomo.io.signals.write_result_signals`) and the stack exports
(:mod:`chemtomo.io.export`) give the per-voxel values on request. Fractions
and the mask do not depend on it.

Format 1.0 files (no per-dataset attributes, no ``map_units``) read as before;
their maps are per nm too. A file without ``/uncertainty`` reads with
``uncertainty`` None, one without ``/absorption`` with ``absorption`` None, one
without ``haadf_angles_deg`` (every file of a shared tilt set, and every file
before them) with ``haadf_angles_deg`` None.

The file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .absorption import read_absorption, write_absorption
from .atomic import atomic_path
from .provenance import to_json as _json
from .uncertainty import OPTIONAL_STATISTICS, QUANTITIES, SPREAD_KINDS, STATISTICS, uncertainty_dict

FORMAT = "chemtomo-result"
FORMAT_VERSION = "1.1"
#: Names of the volume axes, in array order.
AXIS_NAMES = ("y", "z", "x")
AXIS_DESCRIPTION = ("y: slices along the tilt axis (the micrographs' rows); z: along the beam at 0 degrees; "
                    "x: across the tilt axis")
MAP_UNITS = ("per_nm", "per_pixel")
MAP_UNITS_NOTE = ("maps (and the HAADF volume) hold the input signal per nm of beam path; ASTRA, etspy and "
                  "tomviz SIRT values are per voxel: multiply by pixel_nm to compare")
VOLUME_KINDS = ("maps", "weight", "atomic", "mask", "haadf")
#: HDF5 storage of every volume: gzip at level 1 with byte shuffling. Lossless; level 1 costs a
#: third less CPU than level 4 for files 3-6 % larger (docs/performance.md, "The volume path").
VOLUME_STORAGE = {"compression": "gzip", "compression_opts": 1, "shuffle": True}


def check_map_units(map_units: str) -> str:
    """Return ``map_units`` if it is ``"per_nm"`` or ``"per_pixel"``.

    Parameters
    ----------
    map_units : str

    Returns
    -------
    str

    Raises
    ------
    ValueError
        Any other value.
    """
    if map_units not in MAP_UNITS:
        raise ValueError(f"map_units must be one of {MAP_UNITS}, got {map_units!r}")
    return map_units


def convert_map(volume: np.ndarray, pixel_nm: float, map_units: str) -> np.ndarray:
    """A map (per nm, as stored) in the asked convention.

    Parameters
    ----------
    volume : ndarray
        Values per nm of beam path.
    pixel_nm : float
        Voxel size in nm.
    map_units : {"per_nm", "per_pixel"}
        ``"per_pixel"`` multiplies by ``pixel_nm`` (ASTRA/etspy/tomviz SIRT values).

    Returns
    -------
    ndarray
        ``volume`` itself for ``"per_nm"``, a scaled float32 copy otherwise.
    """
    if check_map_units(map_units) == "per_nm":
        return volume
    return (np.asarray(volume, dtype=np.float32) * np.float32(pixel_nm)).astype(np.float32)


def value_units(kind: str, map_units: str = "per_nm") -> str:
    """Units of the values of a volume of ``kind`` (``counts/nm``, ``counts/voxel`` or ``1``)."""
    if kind in ("maps", "haadf"):
        return "counts/nm" if check_map_units(map_units) == "per_nm" else "counts/voxel"
    if kind in ("weight", "atomic", "mask"):
        return "1"
    raise ValueError(f"volume kind must be one of {VOLUME_KINDS}, got {kind!r}")


def volume_title(kind: str, name: str = "", method: str = "") -> str:
    """The title of a volume: ``"Fe weight fraction"``, ``"Fe_Ka map (hebt_sirt)"``, ``"particle mask"``.

    Parameters
    ----------
    kind : {"maps", "weight", "atomic", "mask", "haadf"}
    name : str
        The line (maps) or element (fractions).
    method : str
        The reconstruction method (shown with maps and the HAADF volume).

    Returns
    -------
    str
    """
    by = f" ({method})" if method else ""
    titles = {"maps": f"{name} map{by}", "weight": f"{name} weight fraction",
              "atomic": f"{name} atomic fraction", "mask": "particle mask", "haadf": f"HAADF volume{by}"}
    if kind not in titles:
        raise ValueError(f"volume kind must be one of {VOLUME_KINDS}, got {kind!r}")
    return titles[kind]


def volume_quantity(kind: str, name: str = "", map_units: str = "per_nm") -> str:
    """What the values of a volume are, in words (HyperSpy's ``Signal.quantity``, the HDF5 ``quantity``)."""
    per = "nm of beam path" if check_map_units(map_units) == "per_nm" else "voxel of beam path"
    words = {"maps": f"{name} X-ray line signal per {per}", "weight": f"{name} weight fraction",
             "atomic": f"{name} atomic fraction", "mask": "particle mask (1 inside)",
             "haadf": f"HAADF signal per {per}"}
    if kind not in words:
        raise ValueError(f"volume kind must be one of {VOLUME_KINDS}, got {kind!r}")
    return words[kind]


def label_volume(ds, kind: str, name: str, pixel_nm: float, method: str = "") -> None:
    """Write the axis and unit attributes (module docstring) on one HDF5 volume dataset.

    Parameters
    ----------
    ds : h5py.Dataset
        A ``(y, z, x)`` volume (or a ``(z, x)`` slice: the last axes are labelled).
    kind : {"maps", "weight", "atomic", "mask", "haadf"}
    name : str
        Line or element ("" for the mask and HAADF).
    pixel_nm : float
        Voxel size in nm.
    method : str
        Reconstruction method, for the title.
    """
    names = AXIS_NAMES[-ds.ndim:] if ds.ndim <= 3 else AXIS_NAMES
    ds.attrs["kind"] = kind
    ds.attrs["axes"] = ",".join(names)
    ds.attrs["axes_description"] = AXIS_DESCRIPTION
    ds.attrs["axis_units"] = ",".join("nm" for _ in names)
    ds.attrs["pixel_nm"] = float(pixel_nm)
    ds.attrs["scale_nm"] = np.full(len(names), float(pixel_nm))
    ds.attrs["units"] = value_units(kind)
    ds.attrs["quantity"] = volume_quantity(kind, name)
    ds.attrs["long_name"] = volume_title(kind, name, method)
    for i, n in enumerate(names):
        ds.dims[i].label = n


def _haadf_volume(result, haadf):
    if haadf is not None:
        return haadf
    for attr in ("haadf_volume", "haadf"):
        v = getattr(result, attr, None)
        if v is not None and np.ndim(v) >= 2:
            return v
    return None


_STAT_WORDS = {"se": "standard error of the {q}", "low": "lower bound of the {p:g} % interval of the {q}",
               "high": "upper bound of the {p:g} % interval of the {q}",
               "bias": "plug-in bias estimate T(x) - x of the {q}"}


def _write_uncertainty(f, unc, px: float, method: str, opts: dict) -> None:
    """The ``/uncertainty`` group (module docstring) of :func:`uncertainty_dict` data ``unc``."""
    g = f.create_group("uncertainty")
    for k in ("replicas", "seed", "interval", "source", "noise_factor", "haadf_sigma_kind", "method"):
        g.attrs[k] = unc[k]
    g.attrs["haadf_sigma"] = np.nan if unc["haadf_sigma"] is None else float(unc["haadf_sigma"])
    g.attrs["interval_method"] = str(unc.get("interval_method", "percentile"))
    g.attrs["notes"] = _json(unc["notes"])
    g.attrs["seconds"] = _json(unc["seconds"])
    p = 100 * float(unc["interval"])
    for spread in SPREAD_KINDS:
        ss = unc.get(spread)
        if ss is None:
            continue
        gs = g.create_group(spread)
        gs.attrs["regions"] = _json(ss["regions"])
        gs.attrs["n_replicas"] = int(unc["replicas"]) if spread == "bootstrap" else -1
        for q in QUANTITIES:
            for name, stats in ss[q].items():
                gn = gs.create_group(f"{q}/{name}")
                for st in STATISTICS + tuple(k for k in OPTIONAL_STATISTICS if k in stats):
                    ds = gn.create_dataset(st, data=np.asarray(stats[st], dtype=np.float32), **opts)
                    label_volume(ds, q, name, px, method if q == "maps" else "")
                    words = _STAT_WORDS[st].format(p=p, q=volume_quantity(q, name))
                    ds.attrs["quantity"] = f"{words} ({spread})"
                    ds.attrs["long_name"] = f"{volume_title(q, name, method if q == 'maps' else '')}: {st}"
                    ds.attrs["statistic"] = st
                    ds.attrs["interval"] = float(unc["interval"])
                    ds.attrs["spread"] = spread


def _read_uncertainty(f, px: float, map_units: str) -> dict | None:
    """The ``/uncertainty`` group as :func:`uncertainty_dict` data (maps in ``map_units``), or None."""
    if "uncertainty" not in f:
        return None
    g = f["uncertainty"]
    out = {k: g.attrs[k].item() if hasattr(g.attrs[k], "item") else g.attrs[k]
           for k in ("replicas", "seed", "interval", "source", "noise_factor", "haadf_sigma_kind", "method")}
    out = {k: (str(v) if isinstance(v, (str, bytes)) else v) for k, v in out.items()}
    sigma = float(g.attrs["haadf_sigma"])
    out["haadf_sigma"] = None if np.isnan(sigma) else sigma
    out["interval_method"] = str(g.attrs.get("interval_method", "percentile"))  # files before it: percentile
    out["notes"] = json.loads(g.attrs["notes"])
    out["seconds"] = json.loads(g.attrs["seconds"])
    scale = 1.0 if map_units == "per_nm" else px
    for spread in SPREAD_KINDS:
        if spread not in g:
            out[spread] = None
            continue
        gs = g[spread]
        ss: dict = {}
        for q in QUANTITIES:
            ss[q] = {}
            for name in (gs[q] if q in gs else []):
                ss[q][name] = {st: (convert_map(gs[q][name][st][()], px, map_units) if q == "maps"
                                    else gs[q][name][st][()])
                               for st in STATISTICS + OPTIONAL_STATISTICS if st in gs[q][name]}
        ss["regions"] = json.loads(gs.attrs["regions"])
        if scale != 1.0:
            for group in ss["regions"].values():
                for stats in group.get("maps", {}).values():
                    for k in stats:
                        stats[k] = stats[k] * scale
        out[spread] = ss
    return out


def write_result(path, result, provenance: dict | None = None, *, haadf: np.ndarray | None = None,
                 uncertainty=None, absorption=None) -> Path:
    """Write a :class:`chemtomo.pipeline.VolumeResult` to HDF5 at ``path`` (layout: module docstring).

    Parameters
    ----------
    path : path
        The ``.h5`` file; written under a temporary name and renamed when complete.
    result : VolumeResult
        Maps, composition, response ratios, geometry and parameters. A result
        without a composition (HAADF only) writes no fractions or mask.
    provenance : dict, optional
        Inputs, versions, command (:func:`chemtomo.io.provenance.provenance`).
    haadf : ndarray (y, z, x), optional
        The HAADF volume, per nm; default the result's ``haadf_volume`` (or
        ``haadf``) attribute where it has one.
    uncertainty : Uncertainty or dict, optional
        :func:`chemtomo.pipeline.uncertainty.bootstrap_uncertainty`'s result for
        ``result`` (or its :func:`chemtomo.io.uncertainty.uncertainty_dict`):
        written as the ``/uncertainty`` group.
    absorption : AbsorptionResult or dict, optional
        :func:`chemtomo.pipeline.absorption.reconstruct_absorption_corrected`'s
        result whose corrected reconstruction is ``result`` (or its
        :func:`chemtomo.io.absorption.absorption_dict`): written as the
        ``/absorption`` group.

    Returns
    -------
    Path
    """
    import h5py

    path = Path(path)
    comp = getattr(result, "composition", None)
    px = float(result.geometry.grid_pixel_nm)
    method = str((result.parameters or {}).get("method", ""))
    haadf = _haadf_volume(result, haadf)
    unc = None if uncertainty is None else uncertainty_dict(uncertainty)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["axes"] = "slices,z,x"
            f.attrs["axis_names"] = ",".join(AXIS_NAMES)
            f.attrs["axes_description"] = AXIS_DESCRIPTION
            f.attrs["axis_units"] = "nm,nm,nm"
            f.attrs["pixel_nm"] = px
            f.attrs["map_units"] = "per_nm"
            f.attrs["map_units_note"] = MAP_UNITS_NOTE
            f.attrs["parameters"] = _json(result.parameters)
            f.attrs["provenance"] = _json(provenance or {})
            haadf_geometry = (result.parameters or {}).get("haadf_geometry")
            if haadf_geometry is not None:
                f.attrs["haadf_angles_deg"] = np.asarray(haadf_geometry["angles_deg"], dtype=np.float64)
            opts = dict(VOLUME_STORAGE)
            g = f.create_group("maps")
            for i, line in enumerate(result.lines):
                label_volume(g.create_dataset(line, data=np.asarray(result.maps[i], dtype=np.float32), **opts),
                             "maps", line, px, method)
            if comp is not None:
                for kind, arr in (("weight", comp.weight), ("atomic", comp.atomic)):
                    g = f.create_group(f"fractions/{kind}")
                    for i, el in enumerate(result.elements):
                        label_volume(g.create_dataset(el, data=np.asarray(arr[i], dtype=np.float32), **opts),
                                     kind, el, px)
                label_volume(f.create_dataset("mask", data=np.asarray(comp.mask, dtype=np.uint8), **opts),
                             "mask", "", px)
                f["mask"].attrs["threshold"] = _json(comp.threshold.as_dict())
            if haadf is not None:
                label_volume(f.create_dataset("haadf", data=np.asarray(haadf, dtype=np.float32), **opts),
                             "haadf", "", px, method)
            g = f.create_group("response_ratios")
            g.attrs["units"] = "1"
            rr = result.response_ratios
            if rr is not None:
                g.attrs["r2"] = float(rr.r2)
                g.attrs["n_samples"] = int(rr.n_samples)
                basis = rr.as_dict().get("basis")
                if basis is not None:
                    g.attrs["basis"] = str(basis)
                for i, line in enumerate(rr.lines):
                    d = g.create_dataset(line, data=float(rr.r[i]))
                    d.attrs["units"] = "1"
                    if result.theory_response_ratios is not None:
                        d.attrs["theory"] = float(result.theory_response_ratios[i])
            if unc is not None:
                _write_uncertainty(f, unc, px, method, opts)
            if absorption is not None:
                write_absorption(f, absorption, px, label_volume, opts)
    return path


def read_result(path, *, map_units: str = "per_nm") -> dict:
    """Read a result file (format 1.0 or 1.1) into a dict of arrays and parsed attributes.

    Parameters
    ----------
    path : path
        A file written by :func:`write_result`.
    map_units : {"per_nm", "per_pixel"}
        The convention of the returned maps and HAADF volume: as stored (per nm
        of path) or per voxel (times ``pixel_nm``, as ASTRA/etspy/tomviz SIRT).

    Returns
    -------
    dict
        ``maps``, ``weight``, ``atomic`` (name -> ndarray (y, z, x)), ``mask``
        (bool), ``haadf`` (ndarray or None), ``response_ratios`` (line -> r),
        ``r2``, ``response_ratio_basis`` (None unless the HAADF had tilts of its
        own), ``haadf_angles_deg`` (ndarray, or None for a shared tilt set and older
        files), ``parameters``, ``provenance``, ``pixel_nm``, ``map_units``,
        ``format_version``, ``uncertainty`` (the ``/uncertainty`` group as
        :func:`chemtomo.io.uncertainty.uncertainty_dict` data, maps in
        ``map_units``; None when the file has none), ``absorption`` (the
        ``/absorption`` group as :func:`chemtomo.io.absorption.absorption_dict`
        data; None when the file has none).

    Raises
    ------
    ValueError
        Not a chemtomo result file, or an unknown ``map_units``.
    """
    import h5py

    check_map_units(map_units)
    out: dict = {"maps": {}, "weight": {}, "atomic": {}, "response_ratios": {}}
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"{path} is not a chemtomo result file (no format={FORMAT!r} attribute)")
        px = float(f.attrs["pixel_nm"])
        stored = f.attrs.get("map_units", "per_nm")  # format 1.0: per nm, unstated
        if stored != "per_nm":
            raise ValueError(f"{path}: map_units {stored!r} is not a stored convention this reader knows (per_nm)")
        for k in f["maps"]:
            out["maps"][k] = convert_map(f["maps"][k][()], px, map_units)
        for kind in ("weight", "atomic"):
            if f"fractions/{kind}" in f:
                for k in f[f"fractions/{kind}"]:
                    out[kind][k] = f[f"fractions/{kind}"][k][()]
        out["mask"] = f["mask"][()].astype(bool) if "mask" in f else None
        out["haadf"] = convert_map(f["haadf"][()], px, map_units) if "haadf" in f else None
        g = f["response_ratios"]
        out["r2"] = g.attrs.get("r2")
        out["response_ratio_basis"] = str(g.attrs["basis"]) if "basis" in g.attrs else None
        ha = f.attrs.get("haadf_angles_deg")
        out["haadf_angles_deg"] = None if ha is None else np.asarray(ha, dtype=np.float64)
        for k in g:
            out["response_ratios"][k] = float(g[k][()])
        out["parameters"] = json.loads(f.attrs["parameters"])
        out["provenance"] = json.loads(f.attrs["provenance"])
        out["pixel_nm"] = px
        out["map_units"] = map_units
        out["format_version"] = str(f.attrs.get("format_version", "1.0"))
        out["uncertainty"] = _read_uncertainty(f, px, map_units)
        out["absorption"] = read_absorption(f)
    return out
