"""Simulation: phantoms and the thin-film forward model with Poisson noise."""

from .forward import Acquisition, Simulation, line_for_elements, simulate_tilt_series, simulate_tilt_sets
from .phantom import DENSITY_G_CM3, Phantom, core_shell_phantom, mixture_density

__all__ = [
    "Acquisition", "DENSITY_G_CM3", "Phantom", "Simulation", "core_shell_phantom",
    "line_for_elements", "mixture_density", "simulate_tilt_series", "simulate_tilt_sets",
]
