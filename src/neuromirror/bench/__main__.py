"""``python -m neuromirror.bench`` (what ``scripts/bench`` runs)."""

import sys

from neuromirror.bench.run import main

sys.exit(main())
