"""``python -m services.cli``: the same as the ``gridwork`` command."""

import sys

from .main import main

sys.exit(main())
