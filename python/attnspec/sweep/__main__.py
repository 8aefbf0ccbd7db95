"""``python -m attnspec.sweep ...``: the same as ``attnspec sweep ...``."""
import sys

from . import main

sys.exit(main())
