"""``python -m litesr``: the same as the ``litesr`` command."""

import sys

from litesr.cli import main

sys.exit(main())
