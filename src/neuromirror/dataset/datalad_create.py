"""DataLad's ``create``, run in a child process.

``from datalad.api import create`` imports most of DataLad and, through it, boto3: ~50 MB
that would stay in the sync process (or the long-running service) for the whole run,
for one call per new dataset — at 10^5 files that was a quarter of a cold mirror's peak
memory.  The child costs the same import time the parent would have paid.

The child dies with its parent (``PR_SET_PDEATHSIG`` on Linux): a sync killed while a
dataset is being created never leaves a creation running on behind its released locks,
racing the rerun that cleans up after it.  The mirror's root is the one dataset made so
(:func:`create_root`): beside it and moved in, so that a kill never leaves it half-made.

Crash points (:mod:`neuromirror.util.crashpoints`): ``datalad-create-git#k`` ends the sync at
the child's k-th git or git-annex command, ``root-created`` and ``root-moved#k`` around the move.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from neuromirror.errors import NeuromirrorError
from neuromirror.util import gitutil
from neuromirror.util.crashpoints import armed, crashpoint, end_tree_at


class CreateError(NeuromirrorError, RuntimeError):
    """``datalad create`` failed; the message is its last line of explanation."""


def create(path: Path | str, **options: Any) -> None:
    """``datalad.api.create(path=path, **options)`` in a child process; raises CreateError."""
    request = json.dumps({"path": str(path), "parent": os.getpid(), "options": options})
    proc = subprocess.run(
        [sys.executable, "-m", "neuromirror.dataset.datalad_create"],
        input=request.encode(),
        capture_output=True,
        env=gitutil.git_env(),
    )
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip()]
        raise CreateError(f"datalad create {path} failed: {lines[-1].strip() if lines else f'exit {proc.returncode}'}")


def create_root(root: Path, new: Path) -> None:
    """The root dataset, made by ``datalad create`` in ``new`` (the root's ``.neuromirror/new/``) and moved
    in, ``.git`` last.

    Made in place, a run killed during the creation left a ``.git`` with a stale ``index.lock``
    or one git does not take for a repository, and every rerun failed (issue 76).  Now a kill
    leaves debris in ``new`` or files that no ``.git`` claims, both discarded here (the caller
    holds the root lock; the creating child died with its parent)."""
    from neuromirror.dataset import skeleton

    root.mkdir(parents=True, exist_ok=True)
    if has_commit(root):  # a repository of its own: made a dataset in place, as always
        create(root, force=True, description="neuromirror root")
        skeleton.tidy(root)
        return
    _discard_half_root(root)
    new.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="root-", dir=new))
    try:
        create(tmp, force=True, description="neuromirror root")
        skeleton.tidy(tmp)  # git's and git-annex's hooks and samples: nothing commits by hand
        crashpoint("root-created")
        for name in ROOT_FILES:
            os.rename(tmp / name, root / name)
            crashpoint("root-moved")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _discard_half_root(root: Path) -> None:
    """What a killed creation of the root left: files no ``.git`` claims, or a ``.git`` with no commit."""
    for name in ROOT_FILES:
        target = root / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


#: what ``datalad create`` makes in the root, in the order it is moved in: ``.git`` last makes it a dataset
ROOT_FILES = (".gitattributes", ".datalad", ".git")


def has_commit(root: Path) -> bool:
    """Whether the repository at ``root`` has a commit at HEAD: read from its files first (checked at each sync
    of each source, where a process would cost more), git's own answer when the files do not tell (a ``.git``
    file, a ref format of another kind): a repository with a commit is never taken for a half-made root."""
    git_dir = root / ".git"
    if git_dir.is_dir() and _head_file_names_a_commit(git_dir):
        return True
    if not (git_dir.exists() or git_dir.is_symlink()):
        return False
    # --git-dir: a .git that is no repository must not send git looking above the root (a home in git)
    asked = ["git", f"--git-dir={git_dir}", "rev-parse", "--verify", "-q", "HEAD^{commit}"]
    return subprocess.run(asked, capture_output=True, env=gitutil.git_env()).returncode == 0


def _head_file_names_a_commit(git_dir: Path) -> bool:
    try:
        head = (git_dir / "HEAD").read_text().strip()
    except OSError:
        return False
    if not head.startswith("ref: "):
        return bool(re.fullmatch(r"[0-9a-f]{40,64}", head))
    ref = head[5:].strip()
    if (git_dir / ref).is_file():
        return True
    try:
        packed = (git_dir / "packed-refs").read_text().splitlines()
    except OSError:
        return False
    return any(line.split()[-1] == ref for line in packed if line and line[0] not in "#^")


def _die_with_parent(parent: int) -> None:
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent check below still applies
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        sys.exit(3)


def _crash_at_commands(parent: int) -> None:
    """With ``NEUROMIRROR_CRASH_AT=datalad-create-git#k``: the sync (and this child) killed as the k-th
    git or git-annex command of the creation starts, as a power cut mid-``datalad create`` would."""
    hit = armed("datalad-create-git")
    if hit is None:
        return
    from datalad.runner.runner import WitlessRunner

    end_tree_at(parent)
    run = WitlessRunner.run

    def run_then_crash(self: Any, *args: Any, **kwargs: Any) -> Any:
        hit()
        return run(self, *args, **kwargs)

    WitlessRunner.run = run_then_crash


def main() -> int:
    request = json.loads(sys.stdin.read())
    _die_with_parent(int(request["parent"]))
    from datalad.api import create as dl_create

    _crash_at_commands(int(request["parent"]))

    from neuromirror.util.quiet import quiet_env
    from neuromirror.util.text import one_line

    try:
        with quiet_env():  # DataLad would chat on stderr otherwise
            dl_create(path=request["path"], result_renderer="disabled", **request["options"])
    except Exception as exc:  # one line for the parent's error message
        print(f"{type(exc).__name__}: {one_line(exc, 500, joined=True)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
