"""Input and output: microscope files in, results that other tools open out."""

from .atomic import atomic_path
from .provenance import provenance, sha256
from .result import read_result, write_result

__all__ = ["atomic_path", "provenance", "read_result", "sha256", "write_result"]
