"""The annex writer: turns file changes into a commit of a git-annex repository.

It knows git and git-annex and nothing of archives.  Two engines implement
the same contract, chosen by name (``--engine`` / NEUROMIRROR_ENGINE):

* ``fast-import`` (default): one ``git fast-import`` stream writes the
  symlinks, the git files, the commit, the tags *and* the git-annex branch's
  location and URL logs.  Thousands of files per second.
* ``batch``: ``git annex fromkey --batch`` + ``registerurl --batch`` +
  ``git commit`` — git-annex does everything itself; slow but the reference
  the tests compare the fast engine against.

Both leave the work tree checked out and clean, make commits whose author and
committer dates are the archive's date (so reruns yield identical commit ids),
and never write outside the repository: paths are validated before they
reach an engine (``neuromirror.util.paths``).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping, Optional, Union

from neuromirror.records import Entry
from neuromirror.util import gitutil

WEB_UUID = "00000000-0000-0000-0000-000000000001"

QUIET_FILTER_COMMENT = (
    "# neuromirror: no git-annex filter here (annexed files are symlinks; see AnnexWriter.quiet_annex_filter)"
)
QUIET_FILTER_LINE = "* !filter"


def with_quiet_filter(attributes: str) -> str:
    """``.git/info/attributes`` text ending with :data:`QUIET_FILTER_LINE` (the text itself if it has it)."""
    if QUIET_FILTER_LINE in attributes.splitlines():
        return attributes
    sep = "" if not attributes or attributes.endswith("\n") else "\n"
    return attributes + sep + QUIET_FILTER_COMMENT + "\n" + QUIET_FILTER_LINE + "\n"


def quiet_filter(git_dir: Path) -> None:
    """A repository's ``info/attributes`` with :data:`QUIET_FILTER_LINE` (written only if it lacked it):
    see :meth:`AnnexWriter.quiet_annex_filter` for why."""
    attributes = git_dir / "info" / "attributes"
    try:
        text = attributes.read_text()
    except FileNotFoundError:  # a dataset made by fast_init: no filter line to quiet
        return
    if "filter=annex" not in text:
        return
    wanted = with_quiet_filter(text)
    if wanted != text:
        attributes.parent.mkdir(parents=True, exist_ok=True)
        attributes.write_text(wanted)


@dataclass(frozen=True, slots=True)
class Put:
    entry: Entry

    def __reduce__(self) -> tuple:  # spooled by the 10^5 (see AnnexEntry.__reduce__)
        return (Put, (self.entry,))


@dataclass(frozen=True, slots=True)
class Delete:
    path: str

    def __reduce__(self) -> tuple:
        return (Delete, (self.path,))


Change = Union[Put, Delete]


@dataclass
class CommitResult:
    commit: str
    files_written: int
    files_deleted: int
    keys_registered: int
    seconds: float


def epoch(date: datetime) -> int:
    if date.tzinfo is None:
        date = date.replace(tzinfo=timezone.utc)
    return int(date.timestamp())


class AnnexWriter(ABC):
    """Writes changes as one commit on the checked-out branch of ``repo``.

    ``url_remotes`` maps a URL prefix (``neuromirror+boss:``) to the uuid of
    the special remote that claims it; any other URL belongs to the web remote.
    """

    name = "abstract"

    def __init__(self, repo: Path, *, url_remotes: Optional[Mapping[str, str]] = None):
        self.repo = Path(repo)
        self.url_remotes = dict(url_remotes or {})

    def remote_for(self, url: str) -> str:
        for prefix, uuid in self.url_remotes.items():
            if url.startswith(prefix):
                return uuid
        return WEB_UUID

    def head(self) -> Optional[str]:
        return gitutil.rev_parse(self.repo, "HEAD")

    def quiet_annex_filter(self) -> None:
        """Keep git from running git-annex's clean filter on this repository's files.

        ``git annex init`` sets ``* filter=annex`` in ``.git/info/attributes`` so that
        files a user ``git add``s can be annexed.  A mirror has no such files: its
        annexed files are symlinks, the rest plain git files.  But whenever one of
        those is stat-dirty (just rewritten by a checkout), ``git status`` runs the
        filter, and git-annex first catches its keys database up with every file
        committed behind its back — with git holding the index lock, so it cannot
        record that and redoes it at every ``git status``: 15 s per 10^5 files.  A
        later line overrides the earlier one; git-annex only checks that its line is
        there.  Clones are unaffected (``.git/info`` is not cloned).
        """
        # a worktree or a submodule whose git dir lives elsewhere: git says where
        git_dir = gitutil.git_dir(self.repo) or Path(gitutil.out(self.repo, "rev-parse", "--absolute-git-dir"))
        quiet_filter(git_dir)

    @abstractmethod
    def commit(self, changes: Iterable[Change], *, message: str, date: datetime) -> CommitResult:
        """Apply ``changes`` on top of HEAD as one commit and check it out."""

    def tag(self, name: str, commit: str, message: str, date: datetime) -> None:
        """An annotated tag, dated like its commit so that reruns give the same tag object."""
        existing = gitutil.ref_sha(self.repo, f"refs/tags/{name}^{{commit}}")
        if existing == commit:
            return
        if existing:
            raise gitutil.GitError(f"tag {name} already points at {existing[:10]}, not {commit[:10]}")
        stamp = f"{epoch(date)} +0000"
        gitutil.run(
            self.repo,
            "tag",
            "-a",
            name,
            commit,
            "-F",
            "-",
            input=message.encode(),
            env={"GIT_COMMITTER_DATE": stamp, "GIT_AUTHOR_DATE": stamp},
        )


def log_stamp(now: Optional[float] = None) -> str:
    """Timestamps in git-annex's branch logs: seconds with a fractional part and an 's'."""
    return f"{(time.time() if now is None else now):.9f}s"
