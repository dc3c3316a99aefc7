"""One module per command; each has ``register(subparsers)`` and imports heavy things lazily.

Thin: a command parses its arguments, calls the layer that does the work (``engine``, ``pin``,
``keep``, ``service``, ``index``...) and prints the result (text or ``--json``). Only ``cli``
(and ``clidoc``, through it) imports the commands; a command may import anything below it.
"""
