"""Getting a pinned version out of the mirror: clone, check out, fetch, verify.

Used by ``neuromirror get`` and ``neuromirror reproduce`` (and, for the file
lists, by ``lock`` and ``verify``).  The steps are DataLad/git-annex ones a
user could type by hand, so a retrieved copy is an ordinary DataLad dataset:

1. ``datalad clone URL DIR`` — the mirror's dataset (a local path) or a
   published sibling (any git URL; see :mod:`neuromirror.publish.sibling`);
2. ``git checkout --detach COMMIT`` — the version's commit (fetched by id if
   the clone's branches do not contain it);
3. ``git annex get -J N --json-progress PATH...`` — content from the URLs the
   mirror registered; git-annex checks every byte against the key
   (SHA256E/MD5E: the archive's own checksum) before it lands in the
   dataset, and a file that does not match is not kept.

Each step has its module: :mod:`~neuromirror.pin.locations` (where a
dataset can be cloned from), :mod:`~neuromirror.pin.clone` (steps 1 and
2, subdatasets included), :mod:`~neuromirror.pin.fetch` (step 3) and
:mod:`~neuromirror.pin.filelist` (what a version holds, and its digest).
This module holds what they share: the error they raise, the
``--allow-ip`` setting loopback archives need, and how sizes are shown (times:
:func:`neuromirror.util.dates.format_duration`).
"""

from __future__ import annotations

import os
from typing import Optional

from neuromirror.errors import NeuromirrorError
from neuromirror.util.sizes import human_bytes


class RetrieveError(NeuromirrorError, RuntimeError):
    """Retrieval failed; the message says what and where, in a line or a few."""


def gist(text: str) -> str:
    """The first non-empty line of an error text, cut to a length a one-line message can hold."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return (lines[0] if lines else "unknown error")[:400]


# -- archives on loopback/private addresses ---------------------------------
#: env var holding the default for ``--allow-ip`` (e.g. "all" for loopback stand-ins)
ALLOW_IP_ENV = "NEUROMIRROR_ALLOW_IP"
ALLOW_IP_KEY = "annex.security.allowed-ip-addresses"


def allow_ip_default(value: Optional[str]) -> Optional[str]:
    return value if value is not None else (os.environ.get(ALLOW_IP_ENV) or None)


# -- formatting -----------------------------------------------------------
def fmt_bytes(n: Optional[int]) -> str:
    return human_bytes(n, none="?")
