"""``python -m pipeline`` runs the ``lanp`` command line."""

import sys

from pipeline.cli import main

sys.exit(main())
