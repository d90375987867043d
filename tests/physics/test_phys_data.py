"""The package's own Bote table: present, complete, and faithful to the shared source files."""

import doctest
import importlib
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from chemtomo.physics.ionization import SUBSHELLS, _table

REPO = Path(__file__).parents[2]
SHARED_BOTE = REPO / ".." / "shared" / "data" / "bote2009"


def test_table_ships_with_package():
    data = resources.files("chemtomo.physics").joinpath("data")
    text = data.joinpath("bote2009_ionization.csv").read_text()
    assert "Bote" in text and "NIST" in text  # citation and notice in the header
    notice = data.joinpath("NOTICE-bote2009.txt").read_text()
    assert "title 17 United States Code Section 105" in notice
    assert "Atomic Data and Nuclear Data Tables 95 (2009) 871" in notice
    table = _table()
    assert {z for z, _ in table} == set(range(1, 100))
    assert all((z, s) in table for z in range(33, 100) for s in SUBSHELLS)
    assert len(table) == 731


@pytest.mark.shared_data
def test_generated_table_matches_shared_source():
    """scripts/make_bote_table.py --check: the committed table equals one rebuilt from ../shared."""
    if not SHARED_BOTE.is_dir():
        pytest.skip(f"shared Bote data not found at {SHARED_BOTE.resolve()} (../shared absent)")
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_bote_table.py"), "--check", "--source", str(SHARED_BOTE)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("module", ["elastic", "ionization", "transitions", "compute"])
def test_docstring_examples(module):
    mod = importlib.import_module(f"chemtomo.physics.{module}")
    failures, tried = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0


def test_physics_is_a_leaf():
    """Importing chemtomo.physics pulls in no other chemtomo package and nothing image-related."""
    code = (
        "import sys, chemtomo.physics; "
        "bad = [m for m in sys.modules if (m.startswith('chemtomo.') and not m.startswith('chemtomo.physics')) "
        "or m.split('.')[0] in ('matplotlib', 'skimage', 'astra', 'hyperspy', 'exspy', 'h5py')]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
