"""``python -m ds01_jupyter.service``: the same as ``ds01d``."""

import sys

from .server import main

sys.exit(main())
