"""``python -m medcl``: the same as the ``medcl`` command."""

import sys

from medcl.cli import main

sys.exit(main())
