"""The reference engine: git-annex's own batch commands, then ``git commit``.

It is the plain path the benchmark measures as an anchor, and the tests use
it to check that the fast engine writes what git-annex itself would.
"""

from __future__ import annotations

import hashlib
import subprocess
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
        fromkey: list[str] = []
        register: list[tuple[str, str]] = []
        deletes: list[str] = []
        gitfiles: list[str] = []
        keys: set[str] = set()
        subdatasets: list[SubdatasetEntry] = []
        for change in changes:
            if isinstance(change, Delete):
                deletes.append(change.path)
                continue
            entry = change.entry
            if isinstance(entry, SubdatasetEntry):  # the subdataset is already in place: a gitlink
                subdatasets.append(entry)
                continue
            target = self.repo / entry.path
            if target.is_symlink() or target.exists():
                target.unlink()
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(entry, GitEntry):
                data = entry.read()
                target.write_bytes(data)
                gitfiles.append(entry.path)
                key = git_file_key(hashlib.sha256(data).hexdigest(), len(data))
                register += [(key, u) for u in entry.urls]  # the archive serves these bytes: for ``urls``
            else:
                assert isinstance(entry, AnnexEntry)
                fromkey.append(f"{entry.key} {entry.path}")
                register += [(entry.key, u) for u in entry.urls]
                keys.add(entry.key)
        modules = gitmodules.read(self.repo, self.head())
        sub_paths = {m.get("path", n) for n, m in modules.items()}
        sub_deletes = [p for p in deletes if p in sub_paths]
        if sub_deletes:  # a subdataset's directory is a repository of its own: git rm would refuse it
            deletes = [p for p in deletes if p not in sub_paths]
            gitutil.run(self.repo, "rm", "-q", "--cached", "--", *sub_deletes)
        if deletes:
            proc = subprocess.run(
                ["git", "-C", str(self.repo), "rm", "-q", "--pathspec-from-file=-", "--pathspec-file-nul"],
                input="\0".join(deletes).encode(),
                capture_output=True,
                env=gitutil.git_env(),
            )
            if proc.returncode != 0:
                raise gitutil.GitError(f"git rm failed: {proc.stderr.decode(errors='replace').strip()}")
        for e in subdatasets:
            gitutil.run(self.repo, "update-index", "--add", "--cacheinfo", f"160000,{e.commit},{e.path}")
        if gitmodules.updated(modules, subdatasets, sub_deletes):
            if modules:
                (self.repo / gitmodules.FILE).write_bytes(gitmodules.render(modules))
                gitutil.run(self.repo, "add", "--", gitmodules.FILE)
            else:
                gitutil.run(self.repo, "rm", "-q", "-f", "--", gitmodules.FILE)
        annex_register(self.repo, register, compact=False)  # into git-annex's journal: fromkey's run commits it
        self._batch(["fromkey", "--force"], fromkey)
        if gitfiles:
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
        head = self.head()
        assert head
        return CommitResult(head, len(fromkey) + len(gitfiles), len(deletes), len(keys), clock.seconds())
