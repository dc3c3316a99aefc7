"""What ``github:ORG`` means for a source: its repository's name, homepage, description and visibility, the token,
and the push's credentials.

Why these choices: they are those of DANDI's own ``dandisets`` organisation (backups2datalad): a dandiset's
repository is named by its id, its homepage is ``https://identifiers.org/DANDI:<id>``, its description reads
``N files, SIZE, R releases, TITLE``; an embargoed dandiset's repositories are private, and one the archive no
longer has is made private, never deleted.  Other archives' repositories are named by the source's name
(``/`` -> ``-``) with the archive's own page as homepage.  The token comes from ``GITHUB_TOKEN`` or git's
``hub.oauthtoken`` and reaches git only as an ``http.extraHeader`` in the push's environment
(``GIT_CONFIG_COUNT``), so it is in no URL, no ``.git/config`` and no message.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import yaml

from neuromirror import archives
from neuromirror.errors import BadInput
from neuromirror.util import gitutil
from neuromirror.util.sizes import human_bytes

if TYPE_CHECKING:
    from neuromirror.index.db import Index

PREFIX = "github:"
#: what the last sync's error says when the archive has the source no more (not a missing asset, not a 5xx)
_GONE = re.compile(r"No such Dandiset")
_ORG = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")


def is_github(to: str) -> bool:
    return to.startswith(PREFIX)


def org_of(to: str) -> str:
    """``github:ORG`` -> ORG; anything else a one-line error."""
    org = to[len(PREFIX) :] if is_github(to) else ""
    if not _ORG.fullmatch(org):
        raise BadInput(f"{to}: expected github:ORG, an organisation's name (letters, digits, -)").at("to")
    return org


def token() -> str:
    """``GITHUB_TOKEN``, else ``git config hub.oauthtoken``; none is a one-line error."""
    found = os.environ.get("GITHUB_TOKEN", "").strip()
    if not found:
        proc = subprocess.run(["git", "config", "--get", "hub.oauthtoken"], capture_output=True, text=True)
        found = proc.stdout.strip()
    if not found:
        raise BadInput("publishing to github:ORG needs a token: set GITHUB_TOKEN or 'git config hub.oauthtoken'")
    return found


def push_env(secret: str) -> dict[str, str]:
    """The environment a git push to GitHub gets: the token as a basic-auth header (GitHub takes any user name with
    the token as password), appended to whatever ``GIT_CONFIG_COUNT`` entries the user has."""
    n = int(os.environ.get("GIT_CONFIG_COUNT") or 0)
    header = "Authorization: Basic " + base64.b64encode(f"x-access-token:{secret}".encode()).decode()
    return {"GIT_CONFIG_COUNT": str(n + 1), f"GIT_CONFIG_KEY_{n}": "http.extraHeader", f"GIT_CONFIG_VALUE_{n}": header}


@dataclass(frozen=True)
class Want:
    """What a repository should be: its name and metadata (compared with what GitHub says, changed where they
    differ)."""

    owner: str
    name: str
    description: str
    homepage: str
    private: bool

    def changes(self, description: str, homepage: str, private: bool) -> dict[str, object]:
        out: dict[str, object] = {}
        if description != self.description:
            out["description"] = self.description
        if homepage != self.homepage:
            out["homepage"] = self.homepage
        if private != self.private:
            out["private"] = self.private
        return out

    def as_dict(self) -> dict[str, object]:
        return {"description": self.description, "homepage": self.homepage, "private": self.private}


def repo_name(source: str) -> str:
    """``dandi:000027`` -> ``000027``; ``boss:coll/exp`` -> ``coll-exp``."""
    return _safe(source.split(":", 1)[1].replace("/", "-"))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)[:100]


def homepage(source: str) -> str:
    """The archive's own page of ``source`` (its record's ``home_page``), "" where it names none."""
    from neuromirror.archives import of_source

    found = of_source(source)
    name = source.split(":", 1)[1]
    page = found.home_page if found else ""
    return page.format(name=name, first=name.split("/", 1)[0]) if page else ""


def hidden(index: Index, source: str) -> Optional[str]:
    """Why ``source``'s repositories are private (embargoed, or gone from the archive), None: public."""
    from neuromirror.publish.credentials import embargo_of

    status = embargo_of(index, source)
    if status:
        return f"embargoed ({status})"
    last = index.runs(source, limit=1)
    error = str((last[0].get("error") or "") if last else "")
    return "gone from the archive" if _GONE.search(error) else None


def describe(index: Index, ds: Path, source: str, releases: int) -> str:
    """``N files, SIZE, R releases, TITLE`` of the source's newest state (GitHub keeps 350 characters); the title
    is the ``name`` of the metadata file the archive's datasets carry (``dandiset.yaml``)."""
    head = index.head_version(source)
    files = head.file_count if head and head.file_count is not None else 0
    size = human_bytes(head.bytes if head else 0, none="0 B")
    title = _title(ds, source)
    text = f"{files} files, {size}, {releases} release{'' if releases == 1 else 's'}" + (f", {title}" if title else "")
    return " ".join(text.split())[:350]


def _title(ds: Path, source: str) -> str:
    archive = archives.of_source(source)
    name = archive.citation_file if archive else None
    if not name:
        return ""
    proc = gitutil.run(ds, "show", f"HEAD:{name}", check=False)
    try:
        d = (json.loads if name.endswith(".json") else _yaml)(proc.stdout) if proc.returncode == 0 else {}
    except ValueError:
        return ""
    return str(d.get("name") or "") if isinstance(d, dict) else ""


def _yaml(text: bytes) -> object:
    """A metadata file parsed by libyaml where PyYAML has it: the pure-Python parser costs a dandiset's
    ``dandiset.yaml`` ~10 ms of CPU, a 200-dandiset publish seconds."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 (a safe loader)
