"""``python -m spyglass.cli``: the ``spyglass`` command."""
import sys

from . import main

sys.exit(main())
