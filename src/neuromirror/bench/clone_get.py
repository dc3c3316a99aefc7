"""The ``clone-get`` scenario: the first ``datalad get`` of one file, as a user of the mirror pays it.

In a fresh ``datalad clone`` of the dandi-cold mirror dataset (plain, and with
``annex.supportunlocked=false``), in the mirror itself, and with ``neuromirror get``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neuromirror.bench.measure import child_env, neuromirror_cmd, run_measured, say


def _git_env(env: dict, *pairs: tuple[str, str]) -> dict:
    """``env`` with git config ``pairs`` added through GIT_CONFIG_COUNT (as a user's ``git -c``)."""
    env = dict(env)
    n = int(env.get("GIT_CONFIG_COUNT") or 0)
    for k, v in pairs:
        env[f"GIT_CONFIG_KEY_{n}"], env[f"GIT_CONFIG_VALUE_{n}"] = k, v
        n += 1
    env["GIT_CONFIG_COUNT"] = str(n)
    return env


def bench_clone_get(ds: Path, root: Path, work: Path, n: int, one: str) -> dict:
    """First ``datalad get`` of one file: in a fresh clone (plain, and with annex.supportunlocked=false),
    in the mirror itself, and with ``neuromirror get``."""
    import shutil

    base = _git_env(child_env(), ("annex.security.allowed-ip-addresses", "all"))
    locked = _git_env(base, ("annex.supportunlocked", "false"))
    res: dict[str, Any] = {"scenario": "clone-get", "n": n, "file": one}
    for variant, env in (("clone", base), ("clone_locked_only", locked)):
        clone = work / f"{variant}-{n}"
        r = run_measured(["datalad", "clone", str(ds), str(clone)], env=env)
        res[f"{variant}_s"] = round(r["wall"], 3)
        for key in ("first_get", "second_get"):
            r = run_measured(["datalad", "get", "--", one], env=env, cwd=clone, check=False)
            res[f"{variant}_{key}_s"] = round(r["wall"], 3)
            if r["rc"]:
                res[f"{variant}_{key}_error"] = r["stderr"].decode(errors="replace").strip()[-300:]
        shutil.rmtree(clone, ignore_errors=True)
    r = run_measured(["datalad", "get", "--", one], env=base, cwd=ds, check=False)
    res["mirror_first_get_s"] = round(r["wall"], 3)
    dest = work / f"nm-get-{n}"
    r = run_measured(
        [
            *neuromirror_cmd(),
            "--root",
            str(root),
            "get",
            f"dandi:{ds.name}",
            one,
            "--to",
            str(dest),
            "--allow-ip",
            "all",
            "-q",
        ],
        env=base,
        check=False,
    )
    res["neuromirror_get_s"] = round(r["wall"], 3)
    if r["rc"]:
        res["neuromirror_get_error"] = r["stderr"].decode(errors="replace").strip()[-300:]
    shutil.rmtree(dest, ignore_errors=True)
    res["wall_s"] = res["clone_first_get_s"]
    say(
        f"N={n}: clone-get: datalad clone {res['clone_s']:.1f} s + first get {res['clone_first_get_s']:.1f} s "
        f"(again {res['clone_second_get_s']:.1f} s); with annex.supportunlocked=false: clone "
        f"{res['clone_locked_only_s']:.1f} s + first get {res['clone_locked_only_first_get_s']:.1f} s; "
        f"in the mirror {res['mirror_first_get_s']:.1f} s; neuromirror get (clone + get) {res['neuromirror_get_s']:.1f} s"
    )
    return res
