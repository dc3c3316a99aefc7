"""Where a dataset was published: the clone URL that ``lock`` and ``cite`` name for a pin.

A pin is cited by where others can clone it.  ``publish`` (:mod:`neuromirror.publish`) writes that
place into the mirror dataset's own git config; lock files and citations read it back here, so the
pin layer never needs the publishing code: a git remote (``published`` by default, from a push to a
sibling), or the clone URL of the dataset's last publish into a RIA store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from neuromirror.util import gitutil

#: git config key (the dataset's own ``.git/config``) naming the clone URL of the dataset's last
#: publish into a RIA store, ``ria+https://HOST/PATH#~dandi/000027``: not a git remote, since git
#: cannot talk to a ``ria+`` URL and ``git fetch --all`` & co. would fail on it
RIA_URL_KEY = "neuromirror.published-url"


def published_url(ds: Path, name: str = "published") -> Optional[str]:
    """The URL a dataset was last published to: under remote ``name``, or (for the default name)
    the RIA store clone URL a ``publish --to ria+file://`` recorded, whichever publish came last."""
    if not (Path(ds) / ".git").exists():
        return None
    if name == "published":
        ria = gitutil.out(ds, "config", "--get", RIA_URL_KEY, check=False)
        if ria:
            return ria
    url = gitutil.out(ds, "config", "--get", f"remote.{name}.url", check=False)
    return url or None


def record_ria_url(ds: Path, url: str) -> bool:
    """Record ``url`` (a store's ``ria+...#~alias``) as where ``ds`` was last published; True if it changed.

    Read first, so that an unchanged republish writes nothing in the mirror's dataset either.
    """
    config = Path(ds) / ".git" / "config"
    if config.is_file() and gitutil.config_file_value(config, "neuromirror", "published-url") == url:
        return False  # read without a git child: a republish of many datasets stays cheap
    if gitutil.out(ds, "config", "--get", RIA_URL_KEY, check=False) == url:
        return False
    gitutil.run(ds, "config", RIA_URL_KEY, url)
    return True
