"""Shared, session-scoped stand-in archives and the environment every test runs in."""

from __future__ import annotations

import os

from neuromirror.gitutil import IDENTITY

# the dandi client must not reach the internet; tests' own git commits need an identity
os.environ.setdefault("DANDI_NO_ET", "1")
os.environ.setdefault("DANDI_CACHE", "ignore")
for _k, _v in IDENTITY.items():
    os.environ.setdefault(_k, _v)
