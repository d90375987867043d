"""Physics: per-line factors f_A, z_A from published models. A leaf: knows nothing of images."""

from .factors import AVOGADRO, BARN_CM2, Factors, LineFactors
from .presets import TABLE2, paper_table2

__all__ = ["AVOGADRO", "BARN_CM2", "Factors", "LineFactors", "TABLE2", "paper_table2"]
