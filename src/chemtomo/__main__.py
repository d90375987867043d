"""``python -m chemtomo``: the command line (see :mod:`chemtomo.cli`)."""
import sys

from chemtomo.cli import main

sys.exit(main())
