"""Keys only a special remote can fetch (BOSS cutouts, embargoed DANDI), checked by git-annex itself.

``verify --content`` reads http(s) URLs itself (:mod:`neuromirror.verify.content`); a key whose URL
only a special remote understands is fetched by ``git annex get --batch-keys`` in a throwaway clone of
the mirror's repository (``git clone --shared``), so git-annex and the special remote check the bytes
against the key and the mirror's repository is only read, never written.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

from neuromirror.pin.clone import remove_clone
from neuromirror.util import gitutil

#: (key, kind, detail) of one key: kind None when git-annex got and verified it
Checked = tuple[str, Optional[str], str]


def annex_check(repo: Path, keys: list[str], *, allow_ip: Optional[str] = None) -> list[Checked]:
    """Fetch ``keys`` with ``git annex get --batch-keys`` in a throwaway clone of ``repo``; (key, kind, detail) each.

    git-annex (and the special remote) check the bytes against the key; the
    mirror's repository is only read (``git clone --shared``), never written.
    """
    tmp = Path(tempfile.mkdtemp(prefix="neuromirror-verify-"))
    scratch = tmp / "scratch"
    try:
        refused = _scratch_clone(repo, scratch, allow_ip)
        if refused is not None:
            return [(k, "unreachable", refused) for k in keys]
        return _get_keys(scratch, keys)
    finally:
        remove_clone(tmp)


def _scratch_clone(repo: Path, scratch: Path, allow_ip: Optional[str]) -> Optional[str]:
    """A shared clone of ``repo`` in which git-annex may fetch (never from the mirror's repository itself);
    why it could not be made, else None."""
    try:
        subprocess.run(
            ["git", "clone", "-q", "--shared", "--no-checkout", str(repo), str(scratch)],
            capture_output=True,
            check=True,
            env=gitutil.git_env(),
        )
    except subprocess.CalledProcessError as exc:
        why = exc.stderr.decode(errors="replace").strip().splitlines() if exc.stderr else []
        return f"cannot make a scratch clone of {repo}: {why[-1] if why else exc}"
    gitutil.run(scratch, "config", "remote.origin.annex-ignore", "true")
    if allow_ip:
        gitutil.run(scratch, "config", "annex.security.allowed-ip-addresses", allow_ip)
    init = gitutil.run(scratch, "annex", "init", "-q", "neuromirror verify scratch clone", check=False)
    if init.returncode != 0:
        lines = init.stderr.decode(errors="replace").strip().splitlines()
        return f"git annex init failed in a scratch clone: {lines[-1] if lines else '?'}"
    return None


def _get_keys(scratch: Path, keys: list[str]) -> list[Checked]:
    """One git-annex (and one special remote process) for all keys (``--batch-keys``): each key's answer."""
    proc = gitutil.run(
        scratch,
        "-c",
        "annex.verify=true",
        "annex",
        "get",
        "--batch-keys",
        "--json",
        "--json-error-messages",
        input=("\n".join(keys) + "\n").encode(),
        check=False,
    )
    results: dict[str, dict] = {}
    for line in proc.stdout.decode(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("key"):
                results[rec["key"]] = rec
    err = proc.stderr.decode(errors="replace").strip().splitlines()
    return [_verdict(key, results.get(key), err[-1] if err else None) for key in keys]


def _verdict(key: str, rec: Optional[dict], last_err: Optional[str]) -> Checked:
    """A key got is fine; a failed verification is wrong bytes; anything else says nothing of the bytes."""
    if rec is not None and rec.get("success"):
        return key, None, ""
    msgs = " ".join(" ".join(m.split()) for m in (rec or {}).get("error-messages") or [] if m.strip())
    msgs = msgs or (rec or {}).get("note") or last_err or "no answer from git-annex"
    low = msgs.lower()
    kind = "content" if ("verif" in low or "checksum" in low or "changed" in low) else "unreachable"
    return key, kind, f"git annex get through the special remote failed: {msgs[:400]}"
