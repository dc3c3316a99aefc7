"""git-annex's own floor for an external special remote (issue 57's ``lost-stores``).

A target that sits below a tool's own floor is met by measuring that floor beside it: here the floor
is the same ``datalad get`` through the most trivial external special remote there can be,
:data:`PROGRAM` (``git-annex-remote-nmfloor``): it speaks git-annex's external special remote
protocol by hand (no ``annexremote``, no imports beyond the standard library) and answers ``TRANSFER
RETRIEVE`` with one copy of ``DIR/KEY`` from a flat directory.  Whatever git-annex spends per key on
an external remote beyond that copy (the protocol's round trip, re-hashing the file the remote wrote,
recording the key) is the floor every external remote, ``git-annex-remote-neuromirror-pack`` among
them, stands on.

:func:`install` writes the program into the work directory (the benchmark's environment gets it on
``PATH``); :func:`fill` hard-links a directory store's keys into the flat directory once;
:func:`enable` registers the remote in one clone's dataset (``initremote``, a cost below every
store's, each key it holds recorded present by the branch writer), not timed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

NAME = "nmfloor"
#: below a directory store's and a packed store's costs: the clone's get reads from this remote first
COST = 50

PROGRAM = """\
import os, shutil, sys

def main():
    out, inp = sys.stdout, sys.stdin
    def say(line):
        out.write(line + "\\n")
        out.flush()
    def config(name):
        say("GETCONFIG " + name)
        return inp.readline().rstrip("\\n").partition(" ")[2]
    say("VERSION 1")
    top = ""
    for line in inp:
        words = line.rstrip("\\n").split(" ", 3)
        cmd = words[0]
        if cmd == "EXTENSIONS":
            say("EXTENSIONS")
        elif cmd in ("INITREMOTE", "PREPARE"):
            top = config("directory")
            say(cmd + ("-SUCCESS" if os.path.isdir(top) else "-FAILURE no directory " + top))
        elif cmd == "TRANSFER":
            way, key, file = words[1], words[2], words[3]
            src, dst = (os.path.join(top, key), file) if way == "RETRIEVE" else (file, os.path.join(top, key))
            try:
                shutil.copyfile(src, dst)
                say("TRANSFER-SUCCESS " + way + " " + key)
            except OSError as exc:
                say("TRANSFER-FAILURE " + way + " " + key + " " + str(exc).replace("\\n", " "))
        elif cmd == "CHECKPRESENT":
            there = os.path.exists(os.path.join(top, words[1]))
            say(("CHECKPRESENT-SUCCESS " if there else "CHECKPRESENT-FAILURE ") + words[1])
        elif cmd == "REMOVE":
            try:
                os.unlink(os.path.join(top, words[1]))
            except FileNotFoundError:
                pass
            say("REMOVE-SUCCESS " + words[1])
        elif cmd == "GETAVAILABILITY":
            say("AVAILABILITY LOCAL")
        elif cmd == "ERROR":
            sys.exit(1)
        else:
            say("UNSUPPORTED-REQUEST")

main()
"""


def install(bin_dir: Path) -> Path:
    """:data:`PROGRAM` as ``bin_dir/git-annex-remote-nmfloor`` (this Python, ``-S``: no site start-up)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / f"git-annex-remote-{NAME}"
    path.write_text(f"#!{sys.executable} -S\n{PROGRAM}")
    path.chmod(0o755)
    return path


def fill(directory_store: Path, flat: Path) -> int:
    """Every key file of a directory store (``DIR/<hash>/<hash>/KEY/KEY``) hard-linked as ``flat/KEY``."""
    flat.mkdir(parents=True, exist_ok=True)
    n = 0
    for top, _dirs, files in os.walk(directory_store):
        for name in files:
            if Path(top).name == name and not (flat / name).exists():
                os.link(Path(top) / name, flat / name)
                n += 1
    return n


def enable(repo: Path, flat: Path, env: dict) -> int:
    """:data:`NAME` registered in ``repo`` (a clone's dataset) over ``flat``, first by cost, told it holds
    every key of ``repo``'s files that ``flat`` has; the keys told."""

    def git(*args: str, input: str = "") -> str:
        proc = subprocess.run(["git", *args], cwd=repo, env=env, input=input, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"git {' '.join(args[:3])} in {repo}: {proc.stderr.strip()[-500:]}")
        return proc.stdout

    git("annex", "initremote", NAME, "type=external", f"externaltype={NAME}", f"directory={flat}", "encryption=none")
    git("config", f"remote.{NAME}.annex-cost", str(COST))
    uuid = git("config", f"remote.{NAME}.annex-uuid").strip()
    keys = [k for k in git("annex", "find", "--include=*", "--format=${key}\\n").split() if (flat / k).exists()]
    from neuromirror.annex.branch_writer import Batch, write

    write(repo, Batch().present(uuid, keys))  # the branch's one writer (tests/test_branch_writer.py)
    return len(keys)
