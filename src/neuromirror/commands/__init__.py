"""One module per command; each has ``register(subparsers)`` and imports heavy things lazily."""
