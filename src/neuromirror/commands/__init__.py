"""One module per command; each has ``register(subparsers)`` and imports heavy things lazily.

Thin: a command parses its arguments, makes one call into :mod:`neuromirror.api` (which does the work
and returns a :class:`neuromirror.results.Result`) and prints it (its ``lines()``, or ``to_json()`` for
``--json``).  A command standing on the API imports nothing of neuromirror but ``neuromirror.api`` and
``neuromirror.commands.common``.  One exception: ``demo`` runs :mod:`neuromirror.demo`, a program that
stands above the API (it syncs stand-in archives, clones and reads back, as a user would), not a verb.
Only ``cli`` (and ``clidoc``, through it) imports the commands.  May import anything below it (the layer
table's rule; the commands standing on the API hold to the narrower one above).
"""
