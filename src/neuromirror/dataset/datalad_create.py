"""DataLad's ``create``, run in a child process.

``from datalad.api import create`` imports most of DataLad and, through it, boto3: ~50 MB
that would stay in the sync process (or the long-running service) for the whole run,
for one call per new dataset — at 10^5 files that was a quarter of a cold mirror's peak
memory.  The child costs the same import time the parent would have paid.

The child dies with its parent (``PR_SET_PDEATHSIG`` on Linux): a sync killed while a
dataset is being created never leaves a creation running on behind its released locks,
racing the rerun that cleans up after it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from neuromirror.errors import NeuromirrorError
from neuromirror.util import gitutil


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


def _die_with_parent(parent: int) -> None:
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent check below still applies
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        sys.exit(3)


def main() -> int:
    request = json.loads(sys.stdin.read())
    _die_with_parent(int(request["parent"]))
    from datalad.api import create as dl_create

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
