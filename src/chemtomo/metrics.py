"""Image-quality metrics against a reference (Yuan 2020, eqs 19-22)."""

from __future__ import annotations

import numpy as np


def ssim_structure(x, y, c: float = 0.0) -> float:
    """SSIM structure term ``s = (s_xy + C) / (s_x s_y + C)`` (eqs 19-22, N-1 normalisation).

    With ``C = 0`` this is Pearson's correlation coefficient of the two images.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"images differ in size: {x.size} vs {y.size}")
    n = x.size
    sxy = np.sum((x - x.mean()) * (y - y.mean())) / (n - 1)
    sx = np.sqrt(np.sum((x - x.mean()) ** 2) / (n - 1))
    sy = np.sqrt(np.sum((y - y.mean()) ** 2) / (n - 1))
    den = sx * sy + c
    return float((sxy + c) / den) if den > 0 else float("nan")


def scale_factor(x, ref) -> float:
    """The ``a`` minimising ``||a x - ref||^2``."""
    x = np.asarray(x, dtype=np.float64).ravel()
    ref = np.asarray(ref, dtype=np.float64).ravel()
    xx = float(x @ x)
    return float(x @ ref) / xx if xx > 0 else 0.0


def mse(x, ref, mask=None) -> float:
    """Mean squared error, optionally inside ``mask``."""
    d = np.asarray(x, dtype=np.float64) - np.asarray(ref, dtype=np.float64)
    if mask is not None:
        d = d[np.asarray(mask, dtype=bool)]
    return float(np.mean(d * d))


def mse_scaled(x, ref) -> float:
    """MSE after the least-squares scale factor (for unquantified maps)."""
    x = np.asarray(x, dtype=np.float64)
    return mse(scale_factor(x, ref) * x, ref)
