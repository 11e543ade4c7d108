"""``python -m fastmeta`` runs the command line (and works under torchrun)."""

import sys

from fastmeta.cli import main

sys.exit(main())
