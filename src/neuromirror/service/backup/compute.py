"""The backup page's numbers moved below the API, to :mod:`neuromirror.account.backup` (the API's
``Mirror.backup`` computes them and the service stands on the API); this name stays for scripts and tests."""

from neuromirror.account.backup import backup, expire_after_of

__all__ = ["backup", "expire_after_of"]
