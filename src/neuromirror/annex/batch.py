"""The reference engine: git-annex's own batch commands, then ``git commit``.

It is the plain path the benchmark measures as an anchor, and the tests use
it to check that the fast engine writes what git-annex itself would.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable

from neuromirror.annex import gitmodules
from neuromirror.annex.branch_writer import annex_register
from neuromirror.annex.contract import AnnexWriter, Change, CommitResult, Delete, epoch
from neuromirror.annex.keys import git_file_key
from neuromirror.records import AnnexEntry, GitEntry, SubdatasetEntry
from neuromirror.util import gitutil, timing


class BatchWriter(AnnexWriter):
    name = "batch"

    def _batch(self, cmd: list[str], lines: list[str]) -> None:
        if not lines:
            return
        proc = subprocess.run(
            ["git", "-C", str(self.repo), "-c", "annex.alwayscompact=false", "annex", *cmd, "--batch"],
            input=("\n".join(lines) + "\n").encode(),
            capture_output=True,
            env=gitutil.git_env(),
        )
        if proc.returncode != 0:
            raise gitutil.GitError(f"git annex {cmd[0]} failed: {proc.stderr.decode(errors='replace').strip()[-300:]}")

    def commit(self, changes: Iterable[Change], *, message: str, date: datetime) -> CommitResult:
        clock = timing.Stopwatch()
        self.quiet_annex_filter()
        staged = _Staged()
        for change in changes:
            self._stage(change, staged)
        modules = gitmodules.read(self.repo, self.head())
        sub_deletes = self._remove(staged, {m.get("path", n) for n, m in modules.items()})
        for e in staged.subdatasets:
            gitutil.run(self.repo, "update-index", "--add", "--cacheinfo", f"160000,{e.commit},{e.path}")
        if gitmodules.updated(modules, staged.subdatasets, sub_deletes):
            self._write_gitmodules(modules)
        annex_register(self.repo, staged.register, compact=False)  # into git-annex's journal: fromkey's run commits it
        self._batch(["fromkey", "--force"], staged.fromkey)
        self._add_gitfiles(staged.gitfiles)
        self._commit(message, date)
        head = self.head()
        assert head
        added = len(staged.fromkey) + len(staged.gitfiles)
        return CommitResult(head, added, len(staged.deletes), len(staged.keys), clock.seconds())

    def _stage(self, change: Change, staged: _Staged) -> None:
        """Sort one change into what each git or git-annex command takes, writing a git file's bytes in place."""
        if isinstance(change, Delete):
            staged.deletes.append(change.path)
            return
        entry = change.entry
        if isinstance(entry, SubdatasetEntry):  # the subdataset is already in place: a gitlink
            staged.subdatasets.append(entry)
            return
        target = self.repo / entry.path
        if target.is_symlink() or target.exists():
            target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(entry, GitEntry):
            data = entry.read()
            target.write_bytes(data)
            staged.gitfiles.append(entry.path)
            key = git_file_key(hashlib.sha256(data).hexdigest(), len(data))
            staged.register += [(key, u) for u in entry.urls]  # the archive serves these bytes: for ``urls``
        else:
            assert isinstance(entry, AnnexEntry)
            staged.fromkey.append(f"{entry.key} {entry.path}")
            staged.register += [(entry.key, u) for u in entry.urls]
            staged.keys.add(entry.key)

    def _remove(self, staged: _Staged, sub_paths: set[str]) -> list[str]:
        """Remove the deleted paths from the index; a subdataset's gitlink apart (git rm would refuse its directory).

        Returns the subdataset paths removed; ``staged.deletes`` keeps only the others."""
        sub_deletes = [p for p in staged.deletes if p in sub_paths]
        if sub_deletes:  # a subdataset's directory is a repository of its own: git rm would refuse it
            staged.deletes = [p for p in staged.deletes if p not in sub_paths]
            gitutil.run(self.repo, "rm", "-q", "--cached", "--", *sub_deletes)
        if staged.deletes:
            proc = subprocess.run(
                ["git", "-C", str(self.repo), "rm", "-q", "--pathspec-from-file=-", "--pathspec-file-nul"],
                input="\0".join(staged.deletes).encode(),
                capture_output=True,
                env=gitutil.git_env(),
            )
            if proc.returncode != 0:
                raise gitutil.GitError(f"git rm failed: {proc.stderr.decode(errors='replace').strip()}")
        return sub_deletes

    def _write_gitmodules(self, modules: gitmodules.Modules) -> None:
        """Write .gitmodules as the subdatasets now stand, or remove it when none is left."""
        if modules:
            (self.repo / gitmodules.FILE).write_bytes(gitmodules.render(modules))
            gitutil.run(self.repo, "add", "--", gitmodules.FILE)
        else:
            gitutil.run(self.repo, "rm", "-q", "-f", "--", gitmodules.FILE)

    def _add_gitfiles(self, gitfiles: list[str]) -> None:
        """Add the small files git keeps itself (annex.largefiles=nothing keeps git-annex's filter off them)."""
        if not gitfiles:
            return
        subprocess.run(
            [
                "git",
                "-C",
                str(self.repo),
                "-c",
                "annex.largefiles=nothing",
                "add",
                "--pathspec-from-file=-",
                "--pathspec-file-nul",
            ],
            input="\0".join(gitfiles).encode(),
            check=True,
            capture_output=True,
            env=gitutil.git_env(),
        )

    def _commit(self, message: str, date: datetime) -> None:
        """Commit the index with author and committer at the version's own date, so a rerun writes the same commit."""
        stamp = f"{epoch(date)} +0000"
        gitutil.run(
            self.repo,
            "commit",
            "-q",
            "--allow-empty",
            "--no-verify",
            "-F",
            "-",
            input=message.encode(),
            env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp},
        )


@dataclass
class _Staged:
    """What one commit's changes ask of each command: fromkey lines, URLs to register, paths to remove or add."""

    fromkey: list[str] = field(default_factory=list)
    register: list[tuple[str, str]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    gitfiles: list[str] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    subdatasets: list[SubdatasetEntry] = field(default_factory=list)
