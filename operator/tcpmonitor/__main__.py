"""``python -m tcpmonitor`` is the ``tcpmonitor`` command."""

import sys

from .cli import main

sys.exit(main())
