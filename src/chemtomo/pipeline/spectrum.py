"""One spectrum or spectrum image quantified with the tomography's thin-film physics.

The thin-film model that the reconstructions invert (Yuan et al. 2020, eqs
4-7) holds for every beam position of a single acquisition too: the
background-subtracted intensity of line A is

    I_A = D_e N_A (Omega / 4 pi) f_A C_A rho t

so, with the same factors ``f_A`` (:mod:`chemtomo.physics`), the weight
fractions follow as in eq 12, ``C_A = (I_A / f_A) / sum_B (I_B / f_B)``
(:func:`chemtomo.quantify.weight_fractions`), and the atomic fractions from
the atomic weights. Line intensities come from
:func:`chemtomo.preprocess.linemaps.line_intensities` (exSpy's windows, or
the local least-squares fit that separates overlapping lines), as for the
tilt series.

A spectrum image gives one composition per pixel (maps) and one for the
whole scan (the summed spectrum); a single spectrum gives one. Pixels whose
summed ``I_A / f_A`` is not positive (no counts above background) get
fractions 0, as outside the particle mask of a volume.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_path
from ..io.detector_meta import detector_facts
from ..io.metadata import beam_energy_kev
from ..io.vendor import load_signals, quiet_hyperspy
from ..physics import Factors
from ..preprocess.linemaps import line_intensities, split_line
from ..quantify import atomic_fractions, weight_fractions

INTENSITY_METHODS = ("windows", "fit")
TABLE_FORMAT_VERSION = "1.0"


@dataclass
class SpectrumComposition:
    """The quantification of one spectrum or one spectrum image.

    Attributes
    ----------
    lines, elements : list of str
        X-ray lines and their elements, in the order given.
    intensities : ndarray, (k,) or (k, ny, nx)
        Background-subtracted line counts (may be negative in a pixel).
    weight, atomic : ndarray, like ``intensities``
        Weight and atomic fractions (0 where no line has counts).
    total_intensities, total_weight, total_atomic : ndarray, (k,)
        The same for the summed spectrum (equal to the above for one spectrum).
    factors : Factors
        The factors used (``f_A`` in barn mol/g).
    pixel_nm : float or None
        Pixel size of a spectrum image (nm), when the file states one.
    source : dict
        What was read and how: file, signal title, beam energy and its
        origin, intensity method, binning.
    """

    lines: list[str]
    elements: list[str]
    intensities: np.ndarray
    weight: np.ndarray
    atomic: np.ndarray
    total_intensities: np.ndarray
    total_weight: np.ndarray
    total_atomic: np.ndarray
    factors: Factors
    pixel_nm: float | None = None
    source: dict = field(default_factory=dict)
    solid_angle_sr: float | None = None

    @property
    def is_image(self) -> bool:
        """Whether this is a spectrum image (per-pixel maps) rather than one spectrum."""
        return self.intensities.ndim == 3

    def table(self) -> list[dict]:
        """One row per line for the whole acquisition (the summed spectrum): JSON/CSV-ready."""
        rows = []
        for i, (line, el) in enumerate(zip(self.lines, self.elements, strict=True)):
            lf = self.factors[line]
            rows.append({
                "line": line, "element": el, "intensity_counts": float(self.total_intensities[i]),
                "f_barn_mol_per_g": lf.f_barn_mol_per_g, "atomic_weight": lf.atomic_weight,
                "weight_fraction": float(self.total_weight[i]), "atomic_fraction": float(self.total_atomic[i]),
            })
        return rows


def _fractions(intensities: np.ndarray, factors: Factors, lines) -> tuple[np.ndarray, np.ndarray]:
    f = factors.f(lines)
    w = weight_fractions(intensities, f)
    return w, atomic_fractions(w, factors.atomic_weights(lines))


def quantify_intensities(intensities, factors: Factors, lines=None) -> tuple[np.ndarray, np.ndarray]:
    """Weight and atomic fractions from line intensities, by the thin-film model (eq 12).

    Parameters
    ----------
    intensities : array_like, (k, ...)
        Background-subtracted counts of the k lines (negative values count as 0).
    factors : Factors
        Holding every line of ``lines``.
    lines : list of str, optional
        The lines of ``intensities``' first axis (default: ``factors.lines``).

    Returns
    -------
    weight, atomic : ndarray, (k, ...)
        Fractions summing to 1 where any line has counts, 0 elsewhere.
    """
    lines = factors.lines if lines is None else list(lines)
    return _fractions(np.asarray(intensities, dtype=np.float64), factors, lines)


def _is_eds(sig) -> bool:
    st = str(sig.metadata.get_item("Signal.signal_type", "") or "").upper()
    return st.startswith("EDS") and sig.axes_manager.signal_dimension == 1


def _describe(i: int, sig) -> str:
    return f"[{i}] {type(sig).__name__} {sig.metadata.General.title!r} {sig.axes_manager._get_dimension_str()}"


def pick_eds_signal(path, signals, index: int | None = None):
    """The EDS spectrum or spectrum image to quantify among the signals of a file.

    The one spectrum image (two navigation axes) if there is one, else the one
    single spectrum; ``index`` (the signal's position in the file) chooses
    among several.

    Parameters
    ----------
    path : path
        The file (for messages).
    signals : list of hyperspy signals
    index : int, optional

    Returns
    -------
    hyperspy signal

    Raises
    ------
    ValueError
        No EDS signal; several candidates and no ``index``; an ``index`` that
        is not an EDS spectrum of the file.
    """
    listing = "; ".join(_describe(i, s) for i, s in enumerate(signals)) or "nothing"
    if index is not None:
        if not 0 <= index < len(signals) or not _is_eds(signals[index]):
            raise ValueError(f"{path}: signal {index} is not an EDS spectrum of this file (it holds: {listing}); "
                             "give the index of an EDS spectrum with --signal")
        return signals[index]
    eds = [s for s in signals if _is_eds(s)]
    if not eds:
        raise ValueError(f"{path} holds no EDS spectrum (found: {listing}); a spectrum needs signal_type "
                         "'EDS_TEM' or 'EDS_SEM' and one energy axis")
    images = [s for s in eds if s.axes_manager.navigation_dimension == 2]
    singles = [s for s in eds if s.axes_manager.navigation_dimension == 0]
    if len(images) == 1:
        return images[0]
    if not images and len(singles) == 1:
        return singles[0]
    raise ValueError(f"{path} holds {len(eds)} EDS spectra ({listing}); choose one with --signal INDEX")


def _energy_axis_kev(sig, path) -> tuple[float, float]:
    ax = sig.axes_manager.signal_axes[0]
    units = str(ax.units or "").strip()
    to_kev = {"kev": 1.0, "ev": 1e-3}.get(units.lower())
    if to_kev is None:
        raise ValueError(f"{path}: the energy axis is in {units!r}; chemtomo reads spectra in keV or eV")
    if not getattr(ax, "is_uniform", True):
        raise ValueError(f"{path}: the energy axis is not uniform; resample it first")
    return float(ax.offset) * to_kev, float(ax.scale) * to_kev


def _resolution_ev(sig) -> float | None:
    for key in ("Acquisition_instrument.TEM.Detector.EDS.energy_resolution_MnKa",
                "Acquisition_instrument.SEM.Detector.EDS.energy_resolution_MnKa"):
        v = sig.metadata.get_item(key)
        if v is not None:
            return float(v)
    return None


def spectrum_array(sig, path="spectrum") -> tuple[np.ndarray, dict]:
    """A spectrum or spectrum image as an array ``(ny, nx, n_channels)`` and its facts.

    A single spectrum becomes ``(1, 1, n_channels)``.

    Parameters
    ----------
    sig : hyperspy signal
        One EDS spectrum (no navigation axis) or spectrum image (two).
    path : path
        For messages.

    Returns
    -------
    data : ndarray, (ny, nx, n_channels)
    facts : dict
        ``energy_axis`` (offset, scale) in keV, ``fwhm_mnka_ev`` (or None),
        ``beam_kev`` (or None), ``elements`` (``Sample.elements``),
        ``pixel_nm`` (or None), ``is_image``.
    """
    from ..io.metadata import axis_pixel_nm

    nav = sig.axes_manager.navigation_dimension
    if nav not in (0, 2):
        raise ValueError(f"{path}: {sig} has {nav} navigation axes; chemtomo quantifies one spectrum (none) or "
                         "one spectrum image (two: y, x); slice a series first")
    data = sig.data
    if hasattr(data, "todense"):  # sparse (Velox)
        data = data.todense()
    data = np.asarray(data)
    if nav == 0:
        data = data.reshape(1, 1, -1)
    pixel_nm = None
    if nav == 2:
        try:
            pixel_nm = axis_pixel_nm(sig.axes_manager.navigation_axes, str(path))
        except ValueError:
            pixel_nm = None
    return data, {
        "energy_axis": _energy_axis_kev(sig, path), "fwhm_mnka_ev": _resolution_ev(sig),
        "beam_kev": beam_energy_kev(sig.metadata),
        "elements": list(sig.metadata.get_item("Sample.elements", []) or []),
        "pixel_nm": pixel_nm, "is_image": nav == 2,
    }


def _bin(data: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return data
    ny, nx = data.shape[0] // factor, data.shape[1] // factor
    if ny < 1 or nx < 1:
        raise ValueError(f"binning a {data.shape[0]}x{data.shape[1]} spectrum image by {factor} leaves no pixel")
    d = data[: ny * factor, : nx * factor].astype(np.float64)
    return d.reshape(ny, factor, nx, factor, -1).sum(axis=(1, 3))


def quantify_spectrum(spectrum, lines=None, factors=None, *, beam_kev: float | None = None,
                      efficiency=None, intensity: str = "windows", bin_factor: int = 1,
                      signal_index: int | None = None, avoid=None,
                      solid_angle_sr: float | None = None) -> SpectrumComposition:
    """Quantify one spectrum or spectrum image by the thin-film model with chemtomo's factors.

    Parameters
    ----------
    spectrum : path or hyperspy signal
        Any file RosettaSciIO/exSpy reads (``.msa``, ``.bcf``, ``.emd``,
        ``.hspy``, JEOL ``.pts``/``.ASW``), or an EDS signal.
    lines : list of str, optional
        X-ray lines (``["Cu_Ka", "Pd_La"]``); default: the file's
        ``Sample.xray_lines``.
    factors : {"physics", "paper"}, path or Factors, optional
        As :func:`chemtomo.io.factors.resolve_factors` (default ``"physics"``:
        computed at the beam energy).
    beam_kev : float, optional
        Beam energy (keV); default: the file's (TEM, else SEM key).
    efficiency : float or str, optional
        Detector efficiency: a flat value (default 0.96) or a preset name of
        :data:`chemtomo.physics.DETECTOR_PRESETS` (``"physics"`` only).
    intensity : {"windows", "fit"}
        Line intensities by exSpy's windows or the local fit
        (:func:`chemtomo.preprocess.linemaps.line_intensities`).
    bin_factor : int
        Sum-bin the spectrum image's pixels by this factor first (default 1).
    signal_index : int, optional
        Which signal of the file (:func:`pick_eds_signal`).
    avoid : list of str, optional
        Elements whose lines the background windows avoid (default: the
        file's ``Sample.elements``).
    solid_angle_sr : float, optional
        EDS solid angle (sr); default: the file's (Velox), else none.

    Returns
    -------
    SpectrumComposition

    Raises
    ------
    ValueError
        No lines, no beam energy, an unreadable file, a line outside the
        energy axis; each names the value and how to give it.
    """
    from ..io.factors import resolve_factors
    from ..physics import DETECTOR_EFFICIENCY, DETECTOR_PRESETS, compute_factors

    path = "signal"
    if isinstance(spectrum, (str, Path)):
        path = Path(spectrum)
        if not path.exists():
            raise FileNotFoundError(f"no such file: {path}")
        sig = pick_eds_signal(path, load_signals(path, lazy=False), signal_index)
    else:
        sig = spectrum
    if intensity not in INTENSITY_METHODS:
        raise ValueError(f"intensity must be one of {INTENSITY_METHODS}, got {intensity!r}")
    b = int(bin_factor)
    if b != bin_factor or b < 1:
        raise ValueError(f"the binning factor must be a positive integer, got {bin_factor!r}")
    data, facts = spectrum_array(sig, path)
    if lines is None:
        lines = list(sig.metadata.get_item("Sample.xray_lines", []) or [])
        if not lines:
            raise ValueError(f"{path}: the file names no X-ray lines (Sample.xray_lines); give them with --lines")
    lines = list(lines)
    elements = [split_line(ln)[0] for ln in lines]
    beam_origin = "given"
    if beam_kev is None:
        beam_kev, beam_origin = facts["beam_kev"], "file metadata (Acquisition_instrument.*.beam_energy)"
    if factors is None:
        factors = "physics"
    if isinstance(efficiency, str) and (efficiency not in DETECTOR_PRESETS or factors != "physics"):
        raise ValueError(f"detector {efficiency!r}: a detector preset ({', '.join(DETECTOR_PRESETS)}) applies to "
                         "computed factors (--factors physics) only")
    if isinstance(efficiency, str):
        if beam_kev is None:
            raise ValueError(f"{path}: the beam energy is not in the file's metadata "
                             "(Acquisition_instrument.TEM.beam_energy); give it with --beam-kev")
        fac = compute_factors(lines, beam_kev=float(beam_kev), detector=efficiency)
    else:
        eff = DETECTOR_EFFICIENCY if efficiency is None else float(efficiency)
        if factors == "physics" and beam_kev is None:
            raise ValueError(f"{path}: the beam energy is not in the file's metadata "
                             "(Acquisition_instrument.TEM.beam_energy); give it with --beam-kev")
        fac = resolve_factors(factors, lines, beam_kev, eff)
    data = _bin(data, b)
    avoid = sorted(set(facts["elements"] if avoid is None else avoid) | set(elements))
    kw = {"energy_axis": facts["energy_axis"], "beam_kev": beam_kev, "fwhm_mnka_ev": facts["fwhm_mnka_ev"],
          "method": intensity, "avoid": avoid}
    with quiet_hyperspy():
        per_pixel = line_intensities(data, lines, **kw)
        total = line_intensities(data.sum(axis=(0, 1), keepdims=True, dtype=np.float64), lines, **kw)
    inten = np.stack([np.asarray(per_pixel[ln], dtype=np.float64) for ln in lines])
    tot = np.array([float(np.asarray(total[ln]).ravel()[0]) for ln in lines])
    w, a = _fractions(inten, fac, lines)
    tw, ta = _fractions(tot, fac, lines)
    if not facts["is_image"]:
        inten, w, a = inten[:, 0, 0], w[:, 0, 0], a[:, 0, 0]
    pixel_nm = facts["pixel_nm"] * b if facts["pixel_nm"] is not None else None
    det = detector_facts(sig)
    omega = solid_angle_sr if solid_angle_sr is not None else det.solid_angle_sr
    if omega is not None:
        omega = det.require_solid_angle_sr(omega, str(path))
    source = {"file": str(path), "signal": str(sig.metadata.General.title), "beam_kev": beam_kev,
              "beam_kev_from": beam_origin, "intensity_method": intensity, "bin_factor": b,
              "background_avoids": avoid, "model": "thin film, C_A = (I_A/f_A) / sum_B (I_B/f_B) (Yuan 2020 eq 12)",
              "detector": det.as_dict(),
              "solid_angle_from": None if omega is None else ("given" if solid_angle_sr is not None else "file")}
    return SpectrumComposition(lines, elements, inten, w, a, tot, tw, ta, fac, pixel_nm, source, omega)


# --------------------------------------------------------------------------- writers

def write_table(comp: SpectrumComposition, path) -> Path:
    """Write the whole-acquisition table as ``.csv`` or ``.json`` (whole or not at all).

    The JSON holds the rows, the source, the factors' ingredients and, for a
    spectrum image, the map shape and pixel size; the CSV holds the rows.

    Parameters
    ----------
    comp : SpectrumComposition
    path : path
        Ending in ``.csv`` or ``.json``.

    Returns
    -------
    Path
    """
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in (".csv", ".json"):
        raise ValueError(f"{path}: the table is written as .csv or .json, got {path.suffix!r}")
    rows = comp.table()
    with atomic_path(path) as tmp:
        if kind == ".json":
            doc = {"format": "chemtomo spectrum quantification", "format_version": TABLE_FORMAT_VERSION,
                   "rows": rows, "source": comp.source, "factors": comp.factors.as_dict(comp.solid_angle_sr),
                   "spectrum_image": ({"shape": list(comp.intensities.shape[1:]), "pixel_nm": comp.pixel_nm}
                                      if comp.is_image else None)}
            Path(tmp).write_text(json.dumps(doc, indent=2, default=float))
        else:
            with open(tmp, "w", newline="") as fh:
                wr = csv.DictWriter(fh, fieldnames=list(rows[0]))
                wr.writeheader()
                wr.writerows(rows)
    return path


def composition_signals(comp: SpectrumComposition) -> dict:
    """Per-pixel maps as HyperSpy signals: ``intensity``, ``weight`` and ``atomic`` stacks.

    Each is a ``Signal2D`` ``(line | y, x)``: one navigation axis over the
    lines (in order), two signal axes scaled by the pixel size in nm (or in
    pixels when the file gives none); ``metadata.chemtomo`` holds the lines,
    elements and source.

    Parameters
    ----------
    comp : SpectrumComposition
        Of a spectrum image.

    Returns
    -------
    dict kind -> hyperspy Signal2D
    """
    if not comp.is_image:
        raise ValueError("maps need a spectrum image; a single spectrum has only the table")
    with quiet_hyperspy():
        import hyperspy.api as hs
    out = {}
    units = {"intensity": "counts", "weight": "1", "atomic": "1"}
    for kind, arr in (("intensity", comp.intensities), ("weight", comp.weight), ("atomic", comp.atomic)):
        s = hs.signals.Signal2D(np.asarray(arr, dtype=np.float32))
        nav = s.axes_manager.navigation_axes[0]
        nav.name, nav.units = "line", ""
        for ax, name in zip(s.axes_manager.signal_axes, ("x", "y"), strict=True):
            ax.name = name
            ax.scale = comp.pixel_nm if comp.pixel_nm is not None else 1.0
            ax.units = "nm" if comp.pixel_nm is not None else "px"
        label = {"intensity": "line intensity", "weight": "weight fraction", "atomic": "atomic fraction"}[kind]
        s.metadata.General.title = f"{label} ({', '.join(comp.lines)})"
        s.metadata.set_item("Signal.quantity", f"{label} ({units[kind]})")
        s.metadata.set_item("chemtomo", {"kind": kind, "lines": list(comp.lines), "elements": list(comp.elements),
                                         "source": json.dumps(comp.source, default=str)})
        out[kind] = s
    return out


def write_maps(comp: SpectrumComposition, folder, prefix: str = "") -> list[Path]:
    """Write the per-pixel maps as ``<folder>/<prefix>{intensity,weight,atomic}.hspy``, all or none.

    Parameters
    ----------
    comp : SpectrumComposition
        Of a spectrum image.
    folder : path
        Created if needed.
    prefix : str
        Prepended to each file name.

    Returns
    -------
    list of Path
    """
    import contextlib

    signals = composition_signals(comp)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{prefix}{k}.hspy" for k in signals]
    with contextlib.ExitStack() as stack:
        for p, s in zip(paths, signals.values(), strict=True):
            tmp = stack.enter_context(atomic_path(p))
            with quiet_hyperspy():
                s.save(tmp, overwrite=True)
    return paths


__all__ = ["INTENSITY_METHODS", "SpectrumComposition", "composition_signals", "pick_eds_signal", "quantify_intensities",
           "quantify_spectrum", "spectrum_array", "write_maps", "write_table"]
