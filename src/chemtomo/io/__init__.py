"""Input and output: microscope files in, results that other tools open out."""

from .atomic import atomic_path
from .export import export_result, export_result_volumes
from .provenance import provenance, sha256
from .result import read_result, write_result
from .signals import result_signals, write_result_signals

__all__ = ["atomic_path", "export_result", "export_result_volumes", "provenance", "read_result", "result_signals",
           "sha256", "write_result", "write_result_signals"]
