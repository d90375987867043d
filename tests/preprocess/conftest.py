"""Import HyperSpy/exSpy once without their import-time deprecation chatter (warnings are errors here)."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _quiet_hyperspy_import():
    from chemtomo.io.microscope import _hs

    _hs()
