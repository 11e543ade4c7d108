"""``python -m fastmeta.rl``: the meta-RL commands (see :mod:`fastmeta.rl.cli`)."""

import sys

from fastmeta.rl.cli import main

sys.exit(main())
