"""The experimental result: the groups a raw-series run adds to ``result.h5``, and the staged output folder.

:func:`write_experimental_groups` adds them to a file that
:func:`chemtomo.io.result.write_result` wrote for the primary method;
:func:`read_experimental` reads the whole file back; :func:`staged_folder`
stages an output folder (``result.h5``, ``export/``, ``figures/``) in a
temporary folder beside it and moves everything into place only when all of
it was written.

Groups added to the result file (besides ``maps``, ``fractions``, ``mask``,
``response_ratios`` of the primary method)::

    /methods/<method>/maps/<line>, fractions/{weight,atomic}/<element>, mask
                      attrs: factor, threshold (JSON), r2, response_ratios (JSON)
    /alignment/shifts_px             (n_tilts, 2) (dy, dx) raw pixels, after rotation
    /alignment/total_shifts_px       shifts with the tilt-axis offset added
    /alignment/haadf_registration_px (n_tilts, 2) HAADF-to-EDS shifts, raw pixels
    /alignment/angles_deg
              attrs: rotation_deg, axis_offset_px, reference_index, method,
                     convention, diagnostics (JSON)
    /alignment/tomviz/...            comparison with a tomviz alignment, if asked
    /alignment/eds/{shifts_px,total_shifts_px,angles_deg}  with a HAADF at tilts of its own
              (/alignment is then the HAADF's): the EDS tilts' alignment, same attrs
    /preprocess/shadowing_factors/<line>  (n_tilts,) scale applied to each tilt
              attrs: bin_factor, pixel_nm_raw, windows_kev (JSON), clipped (JSON)
    /tiltseries/haadf, /tiltseries/eds/<line>   the preprocessed stacks
              (n_tilts, slices, pixels) that were reconstructed, without the
              padding; attrs angles_deg (haadf_angles_deg when the HAADF has tilts
              of its own), pixel_nm, pad_px; each stack axes
              "tilt,y,x", axis_units, pixel_nm, units and dimension labels
    Every volume of /methods carries the labels of chemtomo.io.result (axes, units, ...).
    root attrs: primary_method, methods (JSON), timings_s (JSON; the steps
              before writing)
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .atomic import remove_stale_temporaries
from .export import EXPORT_KINDS
from .provenance import to_json as _json
from .result import VOLUME_STORAGE, label_volume, read_result


def _same_storage(f, a: str, b: str) -> bool:
    """Whether datasets ``a`` and ``b`` of file ``f`` store the same bytes (so decode to the same values).

    Same shape, type, chunks and filters, and every chunk's stored (compressed)
    bytes and filter mask equal; read raw, nothing decompressed.
    """
    import h5py

    if a not in f or b not in f:
        return False
    da, db = f[a], f[b]
    if not (isinstance(da, h5py.Dataset) and isinstance(db, h5py.Dataset)):
        return False
    def filters(d):
        plist = d.id.get_create_plist()
        return [plist.get_filter(i) for i in range(plist.get_nfilters())]

    if (da.shape != db.shape or da.dtype != db.dtype or da.chunks is None or da.chunks != db.chunks
            or filters(da) != filters(db) or da.id.get_num_chunks() != db.id.get_num_chunks()):
        return False
    for i in range(da.id.get_num_chunks()):
        offset = da.id.get_chunk_info(i).chunk_offset
        if da.id.read_direct_chunk(offset) != db.id.read_direct_chunk(offset):  # (filter mask, bytes)
            return False
    return True


def _volume_dataset(f, g, name: str, data: np.ndarray, opts: dict, top: str | None = None):
    """``g[name] = data`` compressed with ``opts``, or the stored chunks of ``f[top]`` copied.

    ``top``, given only when the caller knows that dataset was written from the
    same array (the primary method's volumes, at the top level already): if it
    has the same shape, type and compression, its compressed chunks are copied
    (HDF5 object copy, without its attributes) instead of compressing ``data``
    again; the dataset is the same either way.
    """
    if top is not None and top in f:
        src = f[top]
        same_layout = (src.shape == data.shape and src.dtype == data.dtype
                       and src.compression == opts.get("compression")
                       and src.compression_opts == opts.get("compression_opts")
                       and bool(src.shuffle) == bool(opts.get("shuffle")))
        if same_layout:
            parent, _, leaf = name.rpartition("/")
            dest = g.require_group(parent) if parent else g
            f.copy(src, dest, name=leaf, without_attrs=True)
            return dest[leaf]
    return g.create_dataset(name, data=data, **opts)


def write_experimental_groups(path, results: dict, primary: str, pre, *, timings_s: dict | None = None,
                              tomviz: dict | None = None, primary_at_top: bool = False) -> Path:
    """Add the experimental groups (module docstring) to a result file written by :func:`write_result`.

    Parameters
    ----------
    path : path
        A result file (``write_result`` of the primary method); opened for appending.
    results : dict method -> VolumeResult
        Every method's result (:func:`chemtomo.pipeline.experimental.reconstruct_experimental`).
    primary : str
        The method written at the top level.
    pre : Preprocessed
        The preprocessing (:func:`chemtomo.preprocess.preprocess_tilt_series`):
        alignment, registration, shadowing factors, the series.
    timings_s : dict, optional
        Seconds per step before writing.
    tomviz : dict, optional
        A comparison with a tomviz alignment (:func:`chemtomo.preprocess.align.compare_with_tomviz`).
    primary_at_top : bool
        The file's top-level volumes were written (by ``write_result``) from
        ``results[primary]`` itself: its group under ``methods/`` then copies
        their compressed chunks instead of compressing the same arrays again
        (default False: every group compressed from the arrays).

    Returns
    -------
    Path
    """
    import h5py

    path = Path(path)
    opts = dict(VOLUME_STORAGE)
    with h5py.File(path, "a") as f:
        f.attrs["primary_method"] = primary
        f.attrs["methods"] = _json(list(results))
        f.attrs["timings_s"] = _json(timings_s or {})
        for m, res in results.items():
            g = f.create_group(f"methods/{m}")
            g.attrs["factor"] = res.factor
            g.attrs["threshold"] = _json(res.composition.threshold.as_dict())
            g.attrs["parameters"] = _json(res.parameters)
            if res.response_ratios is not None:
                g.attrs["r2"] = float(res.response_ratios.r2)
                g.attrs["response_ratios"] = _json(res.response_ratios.as_dict())
            px = float(res.geometry.grid_pixel_nm)
            top = primary_at_top and m == primary  # the same arrays are at the top level: their chunks copied
            for i, ln in enumerate(res.lines):
                name = f"maps/{ln}"
                label_volume(_volume_dataset(f, g, name, res.maps[i].astype(np.float32), opts, name if top else None),
                             "maps", ln, px, m)
            for kind, arr in (("weight", res.composition.weight), ("atomic", res.composition.atomic)):
                for i, el in enumerate(res.elements):
                    name = f"fractions/{kind}/{el}"
                    label_volume(_volume_dataset(f, g, name, arr[i].astype(np.float32), opts, name if top else None),
                                 kind, el, px)
            label_volume(_volume_dataset(f, g, "mask", res.composition.mask.astype(np.uint8), opts,
                                         "mask" if top else None), "mask", "", px)
        al = pre.alignment
        g = f.create_group("alignment")
        g.create_dataset("shifts_px", data=al.shifts_px)
        g.create_dataset("total_shifts_px", data=al.total_shifts_px)
        g.create_dataset("angles_deg", data=al.angles_deg)
        if pre.registration_px is not None:
            g.create_dataset("haadf_registration_px", data=pre.registration_px)
        d = al.as_dict()
        for k in ("rotation_deg", "axis_offset_px", "reference_index", "method", "convention"):
            g.attrs[k] = d[k]
        g.attrs["pixel_nm"] = pre.pixel_nm_raw
        g.attrs["diagnostics"] = _json(al.diagnostics)
        eal = getattr(pre, "eds_alignment", None)
        if eal is not None:  # a HAADF at tilts of its own: the alignment above is the HAADF's
            e = g.create_group("eds")
            e.create_dataset("shifts_px", data=eal.shifts_px)
            e.create_dataset("total_shifts_px", data=eal.total_shifts_px)
            e.create_dataset("angles_deg", data=eal.angles_deg)
            ed = eal.as_dict()
            for k in ("rotation_deg", "axis_offset_px", "reference_index", "method", "convention"):
                e.attrs[k] = ed[k]
            e.attrs["diagnostics"] = _json(eal.diagnostics)
        if tomviz is not None:
            t = g.create_group("tomviz")
            for k in ("ours_px", "tomviz_px", "difference_px", "distance_px"):
                t.create_dataset(k, data=np.asarray(tomviz[k], dtype=float))
            for k in ("rms_px", "max_px", "file", "convention"):
                t.attrs[k] = tomviz[k]
        g = f.create_group("preprocess")
        for ln, fac in pre.shadowing_factors.items():
            g.create_dataset(f"shadowing_factors/{ln}", data=np.asarray(fac, dtype=float))
        g.attrs["bin_factor"] = pre.bin_factor
        g.attrs["pixel_nm_raw"] = pre.pixel_nm_raw
        g.attrs["windows_kev"] = _json(pre.windows_kev)
        g.attrs["clipped"] = _json(pre.clipped)
        g.attrs["notes"] = _json(pre.notes)
        s = pre.field_series
        g = f.create_group("tiltseries")
        g.attrs["pad_px"] = pre.pad_px
        g.attrs["angles_deg"] = s.angles_deg
        if not s.shares_angles:
            g.attrs["haadf_angles_deg"] = s.haadf_angles
        g.attrs["pixel_nm"] = s.pixel_nm
        stacks = ([("haadf", s.haadf)] if s.haadf is not None else []) + [(f"eds/{ln}", v) for ln, v in s.eds.items()]
        for name, v in stacks:
            d = g.create_dataset(name, data=v.astype(np.float32), **opts)
            d.attrs["axes"], d.attrs["axis_units"] = "tilt,y,x", "degrees,nm,nm"
            d.attrs["pixel_nm"], d.attrs["units"] = float(s.pixel_nm), "counts"
            for i, n in enumerate(("tilt", "y", "x")):
                d.dims[i].label = n
    return path


def read_experimental(path) -> dict:
    """A result file with the experimental groups: :func:`read_result` plus what the file holds of them.

    Parameters
    ----------
    path : path
        A chemtomo result file (with or without the experimental groups).

    Returns
    -------
    dict
        :func:`read_result`'s keys plus ``primary_method``, ``timings_s``,
        ``methods`` (method -> maps, weight, atomic, mask, factor, r2,
        threshold, response_ratios), ``alignment``, ``preprocess`` and
        ``tiltseries`` (empty dicts when absent). A method's volume stored as
        the same bytes as the top-level one (the primary method's, as
        :func:`chemtomo.pipeline.experimental.write_outputs` writes them) is
        not decoded twice: it is a read-only view of the top-level array.

    Raises
    ------
    ValueError
        Not a chemtomo result file.
    """
    import h5py

    out = read_result(path)
    out["methods"], out["alignment"], out["preprocess"], out["tiltseries"] = {}, {}, {}, {}
    with h5py.File(path, "r") as f:
        out["primary_method"] = f.attrs.get("primary_method")
        ts = f.attrs.get("timings_s")
        out["timings_s"] = json.loads(ts) if ts is not None else {}
        if "methods" in f:
            order = json.loads(f.attrs["methods"]) if "methods" in f.attrs else []
            def volume(m, name, top_key=None):
                """``methods/<m>/<name>``; a read-only view of the top-level array when both store the same bytes."""
                top = out.get(top_key[0], {}).get(top_key[1]) if top_key is not None else None
                if top is not None and _same_storage(f, f"methods/{m}/{name}", name):
                    view = top.view()
                    view.flags.writeable = False
                    return view
                return f["methods"][m][name][()]

            for m in [m for m in order if m in f["methods"]] + [m for m in f["methods"] if m not in order]:
                g = f["methods"][m]
                d = {"maps": {k: volume(m, f"maps/{k}", ("maps", k)) for k in g["maps"]},
                     "weight": {k: volume(m, f"fractions/weight/{k}", ("weight", k)) for k in g["fractions/weight"]},
                     "atomic": {k: volume(m, f"fractions/atomic/{k}", ("atomic", k)) for k in g["fractions/atomic"]},
                     "mask": g["mask"][()].astype(bool), "factor": g.attrs.get("factor"),
                     "r2": g.attrs.get("r2"), "threshold": json.loads(g.attrs.get("threshold", "{}"))}
                if "response_ratios" in g.attrs:
                    d["response_ratios"] = json.loads(g.attrs["response_ratios"])
                out["methods"][m] = d
        if "alignment" in f:
            g = f["alignment"]
            a = {k: g[k][()] for k in g if isinstance(g[k], h5py.Dataset)}
            a.update({k: (json.loads(v) if k == "diagnostics" else v) for k, v in g.attrs.items()})
            if "tomviz" in g:
                a["tomviz"] = {k: g["tomviz"][k][()] for k in g["tomviz"]}
                a["tomviz"].update(dict(g["tomviz"].attrs))
            if "eds" in g:
                a["eds"] = {k: g["eds"][k][()] for k in g["eds"]}
                a["eds"].update({k: (json.loads(v) if k == "diagnostics" else v) for k, v in g["eds"].attrs.items()})
            out["alignment"] = a
        if "preprocess" in f:
            g = f["preprocess"]
            p = {k: (json.loads(v) if k in ("windows_kev", "clipped", "notes") else v) for k, v in g.attrs.items()}
            if "shadowing_factors" in g:
                p["shadowing_factors"] = {k: g["shadowing_factors"][k][()] for k in g["shadowing_factors"]}
            out["preprocess"] = p
        if "tiltseries" in f:
            g = f["tiltseries"]
            t = {"angles_deg": np.asarray(g.attrs["angles_deg"]), "pixel_nm": float(g.attrs["pixel_nm"]),
                 "eds": {k: g["eds"][k][()] for k in g["eds"]} if "eds" in g else {}}
            t["haadf"] = g["haadf"][()] if "haadf" in g else None
            if "haadf_angles_deg" in g.attrs:
                t["haadf_angles_deg"] = np.asarray(g.attrs["haadf_angles_deg"])
            out["tiltseries"] = t
    return out


def result_volumes(result, kinds: Iterable[str] = ("maps", "weight")) -> dict[str, np.ndarray]:
    """The volumes of a result to export as stacks, named ``maps_<line>``, ``weight_<element>``, ...

    Parameters
    ----------
    result : VolumeResult
        A method's result (maps, composition, lines, elements).
    kinds : iterable of {"maps", "weight", "atomic", "mask", "haadf"}
        Which volumes (default maps and weight fractions); ``haadf`` when the
        result has a ``haadf_volume``.

    Returns
    -------
    dict name -> ndarray (slices, z, x)

    Raises
    ------
    ValueError
        An unknown kind.
    """
    kinds = list(kinds)
    bad = [k for k in kinds if k not in EXPORT_KINDS]
    if bad:
        raise ValueError(f"export kinds {bad} are not among {EXPORT_KINDS}")
    res = result
    vols = {}
    if "maps" in kinds:
        vols.update({f"maps_{ln}": res.maps[i] for i, ln in enumerate(res.lines)})
    if "weight" in kinds:
        vols.update({f"weight_{el}": res.composition.weight[i] for i, el in enumerate(res.elements)})
    if "atomic" in kinds:
        vols.update({f"atomic_{el}": res.composition.atomic[i] for i, el in enumerate(res.elements)})
    if "mask" in kinds:
        vols["mask"] = res.composition.mask.astype(np.float32)
    haadf = getattr(res, "haadf_volume", None)
    if "haadf" in kinds and haadf is not None:
        vols["haadf"] = haadf
    return vols


@contextmanager
def staged_folder(out) -> Iterator[Path]:
    """Write an output folder all or nothing: yields a staging folder inside ``out``, then moves its files up.

    Everything is written into ``out/.staging-<pid>`` and moved into place
    (``os.replace``, file by file, keeping sub-folders) only when the block
    ends without an exception; the staging folder is removed either way, so
    a failure leaves no half output. Existing files of the same names are
    replaced. Staging folders left by runs that no longer run (a SIGKILL)
    are removed first.

    Parameters
    ----------
    out : path
        The output folder (created if needed); not a ``.h5`` file name.

    Yields
    ------
    Path
        The staging folder.

    Raises
    ------
    ValueError
        ``out`` names an HDF5 file instead of a folder.
    """
    out = Path(out)
    if out.suffix.lower() in (".h5", ".hdf5"):
        raise ValueError(f"{out}: the experimental pipeline writes a folder (result.h5, export/, figures/); "
                         "give a folder name")
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out, ".staging-")  # staging folders of killed runs (SIGKILL), with a warning
    stage = out / f".staging-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    try:
        yield stage
        # everything is written: move it into place
        for p in sorted(stage.rglob("*")):
            if p.is_file():
                dest = out / p.relative_to(stage)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(p, dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


__all__ = ["read_experimental", "result_volumes", "staged_folder", "write_experimental_groups"]
