"""The HDF5 result file: one layout other tools can rely on.

Layout (arrays are float32 ``(slices, z, x)``; a 2-D slice is one slice)::

    /maps/<line>                    reconstructed map of each X-ray line (method units)
    /fractions/weight/<element>     weight fraction, 0 outside the mask
    /fractions/atomic/<element>     atomic fraction, 0 outside the mask
    /mask                           uint8 particle mask
    /response_ratios/<line>         fitted r_A (scalar); group attribute ``r2``;
                                    dataset attribute ``theory`` where known
    attrs: parameters (JSON text), provenance (JSON text), format = "chemtomo-result",
           format_version, pixel_nm, axes = "slices,z,x"

The file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .provenance import to_json as _json

FORMAT = "chemtomo-result"
FORMAT_VERSION = "1.0"


def write_result(path, result, provenance: dict | None = None) -> Path:
    """Write a :class:`chemtomo.pipeline.VolumeResult` to HDF5 at ``path``."""
    import h5py

    path = Path(path)
    comp = result.composition
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["axes"] = "slices,z,x"
            f.attrs["pixel_nm"] = float(result.geometry.grid_pixel_nm)
            f.attrs["parameters"] = _json(result.parameters)
            f.attrs["provenance"] = _json(provenance or {})
            opts = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
            g = f.create_group("maps")
            for i, line in enumerate(result.lines):
                g.create_dataset(line, data=result.maps[i].astype(np.float32), **opts)
            for kind, arr in (("weight", comp.weight), ("atomic", comp.atomic)):
                g = f.create_group(f"fractions/{kind}")
                for i, el in enumerate(result.elements):
                    g.create_dataset(el, data=arr[i].astype(np.float32), **opts)
            f.create_dataset("mask", data=comp.mask.astype(np.uint8), **opts)
            f["mask"].attrs["threshold"] = _json(comp.threshold.as_dict())
            g = f.create_group("response_ratios")
            rr = result.response_ratios
            if rr is not None:
                g.attrs["r2"] = float(rr.r2)
                g.attrs["n_samples"] = int(rr.n_samples)
                for i, line in enumerate(rr.lines):
                    d = g.create_dataset(line, data=float(rr.r[i]))
                    if result.theory_response_ratios is not None:
                        d.attrs["theory"] = float(result.theory_response_ratios[i])
    return path


def read_result(path) -> dict:
    """Read a result file into a dict of arrays and parsed attributes."""
    import h5py

    out: dict = {"maps": {}, "weight": {}, "atomic": {}, "response_ratios": {}}
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"{path} is not a chemtomo result file (no format={FORMAT!r} attribute)")
        for k in f["maps"]:
            out["maps"][k] = f["maps"][k][()]
        for kind in ("weight", "atomic"):
            for k in f[f"fractions/{kind}"]:
                out[kind][k] = f[f"fractions/{kind}"][k][()]
        out["mask"] = f["mask"][()].astype(bool)
        g = f["response_ratios"]
        out["r2"] = g.attrs.get("r2")
        for k in g:
            out["response_ratios"][k] = float(g[k][()])
        out["parameters"] = json.loads(f.attrs["parameters"])
        out["provenance"] = json.loads(f.attrs["provenance"])
        out["pixel_nm"] = float(f.attrs["pixel_nm"])
    return out
