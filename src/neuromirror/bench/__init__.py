"""``scripts/bench``: the performance benchmark (docs/performance.md), not part of the test suite.

Drives the whole tool against the stand-ins, as a user would; may import anything below the
commands. Nothing imports it.  :mod:`.run` is the entry (options, the order of the scenarios,
the JSON file); the scenarios (:mod:`.scenarios`, one module each) run through :mod:`.syncs`,
:mod:`.measure` and :mod:`.clone_get` against the stand-ins :mod:`.archives` fills.
"""
