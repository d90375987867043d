"""Loading microscope files and choosing their signals: the spectrum image, the HAADF image.

Files are read through RosettaSciIO / HyperSpy / exSpy (:func:`load_signals`);
a truncated Bruker ``.bcf`` is refused before the reader memory-maps it. The
HAADF image is chosen by what it is (:func:`chemtomo.io.metadata.image_role`):
an image recognised as HAADF, or the one the user names (``--haadf-signal``);
a DF, BF, BSE or SE image or an elemental map is never taken for HAADF.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

import numpy as np

from .angles import HAADF_COMPANION
from .metadata import axis_pixel_nm, image_role


@contextlib.contextmanager
def quiet_hyperspy():
    """Silence HyperSpy's and exSpy's own deprecation chatter about their internals (not ours to fix), locally."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*Import it from `hyperspy\.signals` instead.*")
        warnings.filterwarnings("ignore", message=r".*use `exspy\.material` instead.*")
        yield


@contextlib.contextmanager
def quiet_load_errors():
    """Mute HyperSpy's logged "please report this error" while a file that may be foreign is tried.

    The failure itself is raised to the caller as a ValueError naming the file.
    """
    log = logging.getLogger("hyperspy.io")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _hs():
    try:
        with quiet_hyperspy():
            import exspy  # noqa: F401  (registers the EDS signal types)
            import hyperspy.api as hs
    except ImportError as exc:  # pragma: no cover - declared extra
        raise ImportError("reading microscope files needs HyperSpy and exSpy: pip install 'chemtomo[io]'") from exc
    return hs


def _check_bcf_whole(path: Path) -> None:
    """A truncated .bcf makes the Bruker reader crash the process (SIGBUS); check its size first."""
    try:
        from rsciio.bruker._api import SFS_reader

        sfs = SFS_reader(str(path))
    except Exception as exc:  # noqa: BLE001 - any failure here means unreadable
        raise ValueError(f"{path}: not a readable Bruker .bcf file ({type(exc).__name__}: {exc}); "
                         "is it truncated or corrupt?") from None
    expected = 0x118 + sfs.sfs_n_of_chunks * sfs.chunksize
    size = path.stat().st_size
    if size < expected:
        raise ValueError(f"{path}: truncated .bcf file ({size} bytes, the container declares {expected}); "
                         "copy it again from the microscope")


def check_zspy_readable(path) -> None:
    """Refuse a ``.zspy`` input clearly when the installed RosettaSciIO cannot read it with the installed zarr.

    Parameters
    ----------
    path : path
        Any input; only a ``.zspy`` name is checked.

    Raises
    ------
    ValueError
        Naming the file, the reason (:func:`chemtomo.io.signals.zspy_supported`) and the way out.
    """
    if Path(path).suffix.lower() != ".zspy":
        return
    from .signals import zspy_supported

    ok, why = zspy_supported()
    if not ok:
        raise ValueError(f"{path}: .zspy cannot be read here: {why}; save it as .hspy where it was written "
                         "(hs.load('x.zspy').save('x.hspy'))")


def _load(path: Path, lazy: bool, cutoff_kev: float | None = None):
    check_zspy_readable(path)
    hs = _hs()
    kw = {}
    if path.suffix.lower() == ".bcf":
        _check_bcf_whole(path)
        if cutoff_kev is not None:  # RosettaSciIO then decodes the channels below it only
            kw["cutoff_at_kV"] = float(cutoff_kev)
    try:
        with quiet_hyperspy(), quiet_load_errors():
            out = hs.load(path, lazy=lazy, **kw)
    except Exception as exc:  # noqa: BLE001 - readers raise anything on a bad file
        raise ValueError(f"{path}: cannot be read ({type(exc).__name__}: {exc}); is it truncated, corrupt "
                         "or not a microscope file?") from None
    return out if isinstance(out, list) else [out]


def _describe(sig) -> str:
    return f"{type(sig).__name__} {sig.metadata.General.title!r} {sig.axes_manager._get_dimension_str()}"


def _is_spectrum_image(sig) -> bool:
    st = str(sig.metadata.get_item("Signal.signal_type", "") or "")
    am = sig.axes_manager
    return st.upper().startswith("EDS") and am.signal_dimension == 1 and am.navigation_dimension == 2


def _pick_spectrum_image(path: Path, signals):
    sis = [s for s in signals if _is_spectrum_image(s)]
    if not sis:
        found = "; ".join(_describe(s) for s in signals) or "nothing"
        hint = ""
        if Path(path).suffix.lower() == ".emd" and any(
                str(s.metadata.get_item("Signal.signal_type", "")).upper().startswith("EDS") for s in signals):
            hint = (" (a Velox file saved without its spectrum stream, e.g. 'reduced data' or pruned: only "
                    "summed spectra and maps are left; export the full .emd from Velox)")
        raise ValueError(
            f"{path} holds no EDS spectrum image{hint} (found: {found}); every tilt file needs one, with "
            "signal_type 'EDS_TEM' and two navigation axes (y, x) over one energy axis"
        )
    if len(sis) > 1:
        raise ValueError(
            f"{path} holds {len(sis)} EDS spectrum images ({'; '.join(_describe(s) for s in sis)}); "
            "sum the detectors when exporting (Velox: one spectrum image per tilt)"
        )
    return sis[0]


def _one_name(haadf_title, haadf_signal):
    if haadf_title is not None and haadf_signal is not None and str(haadf_title) != str(haadf_signal):
        raise ValueError(f"haadf_title={haadf_title!r} and haadf_signal={haadf_signal!r} disagree; give one")
    return haadf_signal if haadf_signal is not None else haadf_title


def _images(signals):
    return [s for s in signals if s.axes_manager.signal_dimension == 2 and s.axes_manager.navigation_dimension <= 1]


def _image_list(signals) -> list[tuple[str, str]]:
    """``(title, role)`` of every image in a file (roles by :func:`chemtomo.io.metadata.image_role`)."""
    out = []
    for s in _images(signals):
        role, name = image_role(s)
        title = str(s.metadata.General.title)
        out.append((title if name == title else f"{title} ({name})", role))
    return out


def _on_grid_first(imgs, shape):
    """Images ordered: those on the spectrum image's grid (or an integer multiple of it) first."""
    if shape is None:
        return imgs

    def fits(s):
        sh = s.axes_manager.signal_shape[::-1]
        ry, rx = sh[0] / shape[0], sh[1] / shape[1]
        return ry == rx and ry == int(ry) and ry >= 1

    return sorted(imgs, key=lambda s: not fits(s))


def _pick_haadf(signals, haadf_title: str | None, path=None, shape=None):
    """The image to use as HAADF: the one named ``haadf_title`` (title or detector), else a HAADF image.

    Never an image of another role (DF-S, BF, BSE, SE, an elemental map, an
    unnamed channel) unless it is named; a name that matches none of the
    file's images is an error (a file without images: None, its companion
    ``<stem>_haadf`` file is looked for).
    """
    imgs = _images(signals)
    if haadf_title is not None and imgs:
        want = str(haadf_title).strip().lower()
        hits = [s for s in imgs if want in (str(s.metadata.General.title).strip().lower(),
                                            str(image_role(s)[1]).strip().lower())]
        if not hits:
            found = ", ".join(f"{t} [{r}]" for t, r in _image_list(signals)) or "no images"
            raise ValueError(f"{path}: no image named {haadf_title!r} to use as HAADF (the file holds: {found}); "
                             "give one of these names (--haadf-signal)")
        return _on_grid_first(hits, shape)[0]
    hits = [s for s in imgs if image_role(s)[0] == "HAADF"]
    return _on_grid_first(hits, shape)[0] if hits else None


def _companion(path: Path) -> Path | None:
    for suf in (path.suffix, ".hspy", ".zspy", ".tif", ".tiff"):
        for tag in (HAADF_COMPANION, HAADF_COMPANION.upper(), "_HAADF"):
            c = path.with_name(path.stem + tag + suf)
            if c.is_file():
                return c
    return None


def _pixel_nm(axes, path) -> tuple[float | None, str | None]:
    """The pixel size (nm) of the spectrum image's axes, or None and why (converted by HyperSpy/pint)."""
    try:
        return axis_pixel_nm(axes, str(path)), None
    except ValueError as exc:
        return None, str(exc)


def _metadata_angle(*signals) -> float | None:
    for s in signals:
        if s is None:
            continue
        for key in ("Acquisition_instrument.TEM.Stage.tilt_alpha", "Acquisition_instrument.SEM.Stage.tilt_alpha"):
            v = s.metadata.get_item(key)
            if v is not None:
                try:
                    return float(v)
                except (TypeError, ValueError):
                    pass
    return None


def _haadf_on_grid(path: Path, haadf, shape: tuple[int, int]):
    """The HAADF as a 2-D float image on the spectrum image's (ny, nx) grid (sum-binned if finer)."""
    data = np.asarray(haadf.data, dtype=np.float64)
    if data.ndim == 3:  # a frame series: sum the frames
        data = data.sum(axis=0)
    if data.shape == tuple(shape):
        return data
    ry, rx = data.shape[0] / shape[0], data.shape[1] / shape[1]
    if ry == rx and ry == int(ry) and ry > 1:
        f = int(ry)
        return data.reshape(shape[0], f, shape[1], f).sum(axis=(1, 3))
    raise ValueError(
        f"{path}: the HAADF image is {data.shape[0]}x{data.shape[1]} but the spectrum image "
        f"{shape[0]}x{shape[1]}; they must cover the same scan (equal, or an integer multiple)"
    )


load_signals = _load
