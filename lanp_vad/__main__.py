"""``python -m lanp_vad`` runs the ``lanp`` command line."""

import sys

from lanp_vad.cli import main

sys.exit(main())
