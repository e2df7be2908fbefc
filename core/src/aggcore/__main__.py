"""``python -m aggcore``: the same as the ``aggcore`` command."""

import sys

from .cli import main

sys.exit(main())
