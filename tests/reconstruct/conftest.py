"""Fixtures of the solver tests."""

import pytest


class NoBuffers:
    """An operator that hides ``_forward_into`` / ``_adjoint_into``: every result a fresh array (the old path)."""

    def __init__(self, op):
        self.op, self.shape = op, op.shape

    def __getattr__(self, name):
        if name in ("_forward_into", "_adjoint_into"):
            fresh = getattr(self.op, "_forward" if name == "_forward_into" else "_adjoint")
            return lambda v, out: fresh(v)
        return getattr(self.op, name)


@pytest.fixture
def no_buffers():
    """:class:`NoBuffers`: wrap an operator so that it writes into no buffer."""
    return NoBuffers
