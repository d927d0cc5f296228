"""``python -m gradcheck``: the command line."""

import sys

from gradcheck.cli import main

sys.exit(main())
