"""``python -m agentspan`` is the ``agentspan`` command."""

import sys

from .cli import main

sys.exit(main())
