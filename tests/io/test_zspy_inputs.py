"""``.zspy`` inputs: refused with the measured reason where RosettaSciIO cannot read them with the installed zarr.

RosettaSciIO 0.15.0 (the newest release on the package index, ``pip index versions rosettasciio``) declares
``zarr<3,>=2`` for its zspy extra and its reader/writer use zarr 2's ``NestedDirectoryStore``; chemtomo's
store needs zarr 3. Where a RosettaSciIO that supports zarr 3 is installed these tests skip and
``tests/io/test_io_signals.py::test_zspy_round_trip`` runs the round trip.
"""

from __future__ import annotations

import pytest

from chemtomo.io.hspy import read_stack
from chemtomo.io.microscope import find_tilt_files
from chemtomo.io.signals import zspy_supported


@pytest.fixture
def zspy(tmp_path):
    ok, why = zspy_supported()
    if ok:
        pytest.skip(".zspy is supported here")
    store = tmp_path / "stack.zspy"
    store.mkdir()
    (store / "zarr.json").write_text("{}")
    return store, why


def test_stack_zspy_refused_with_the_reason(zspy):
    store, why = zspy
    with pytest.raises(ValueError, match=r"stack\.zspy: \.zspy cannot be read here: .*needs zarr 2.*\.hspy"):
        read_stack(store)
    assert "zarr" in why


def test_tilt_file_zspy_refused_with_the_reason(zspy):
    store, _ = zspy
    with pytest.raises(ValueError, match="needs zarr 2"):
        find_tilt_files([store])
