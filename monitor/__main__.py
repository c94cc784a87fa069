"""``python -m monitor`` is the ``waba-monitor`` command."""

import sys

from monitor.cli import main

sys.exit(main())
