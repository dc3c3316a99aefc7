"""Running a program the way the benchmark counts it: wall time, CPU of the whole tree, peak RSS.

A sync is a tree of processes (the sync, its git and git-annex children), and what a user
pays in memory is that tree's sum, so :class:`TreeRSS` polls it; CPU comes from the
children's rusage, less sensitive to the machine's load than the wall time.  Every
scenario runs ``neuromirror`` through :func:`run_measured` in the environment of
:func:`child_env`; :func:`startup_time` is the start-up the other scenarios are read against.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional, Sequence

T0 = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {text}", file=sys.stderr, flush=True)


class TreeRSS:
    """Peak RSS (sum over the process and all its descendants), polled every ``interval`` s."""

    def __init__(self, pid: int, interval: float = 0.05):
        import psutil

        self.psutil = psutil
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.at_peak: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> tuple[int, list[tuple[int, str]]]:
        ps = self.psutil
        total = 0
        parts: list[tuple[int, str]] = []
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
        except ps.Error:
            return 0, parts
        cmdlines: dict[int, list[str]] = {}
        for p in procs:
            try:
                cmdlines[p.pid] = p.cmdline()
            except ps.Error:
                pass
        for p in procs:
            try:
                if p is not self.proc and cmdlines.get(p.ppid()) == cmdlines.get(p.pid):
                    # its parent's image, forked and not yet exec'd (subprocess's vfork): the parent's
                    # pages, counted once (seen at 10^6: a 425 MB sync counted twice for one sample)
                    continue
                rss = p.memory_info().rss
                total += rss
                parts.append((rss, p.name()))
            except ps.Error:
                pass
        return total, parts

    def _run(self) -> None:
        while not self._stop.is_set():
            total, parts = self._sample()
            if total > self.peak:
                self.peak = total
                #: the processes making up the peak, largest first (MB, name)
                self.at_peak = [(round(r / 2**20), n) for r, n in sorted(parts, reverse=True)[:4]]
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def own_cpu() -> float:
    """CPU seconds of this process so far (every thread: the in-process stand-ins answering)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run_measured(
    cmd: Sequence[str],
    *,
    env: Optional[dict] = None,
    cwd: Optional[Path] = None,
    input: Optional[bytes] = None,
    check: bool = True,
) -> dict:
    """Run ``cmd``; wall seconds, peak tree RSS (MB), stdout, stderr."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd),
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    rss = TreeRSS(proc.pid)
    out, err = proc.communicate(input)
    wall = time.perf_counter() - t
    peak = rss.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU of the whole tree (children waited for by their parents count): less sensitive to load than wall
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    cpu = user + system
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cmd[:6]))}... failed ({proc.returncode}): "
            f"{err.decode(errors='replace').strip()[-2000:]}"
        )
    return {
        "wall": wall,
        "rss_mb": peak / 2**20,
        "rss_at_peak": rss.at_peak,
        "cpu": cpu,
        "cpu_user": user,
        "cpu_sys": system,
        "stdout": out,
        "stderr": err,
        "rc": proc.returncode,
    }


def stop_process(proc: subprocess.Popen, grace: float = 60) -> None:
    """A long-running child (a service, a view) asked to stop, killed if it has not within ``grace`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def index_rows(root: Path, sql: str, *args: Any) -> list[tuple]:
    """Rows of ``sql`` on the index of the mirror at ``root``, read-only (a running service writes it)."""
    import sqlite3

    con = sqlite3.connect(f"file:{root / '.neuromirror' / 'index.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def neuromirror_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "neuromirror"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "neuromirror"]


#: ``scripts/bench --compare REV``: the other commit's ``src/``, put first on the children's path
#: while its side of a round runs (:mod:`neuromirror.bench.compare`)
CHILD_PYTHONPATH: Optional[str] = None


def child_env() -> dict:
    from neuromirror.util.gitutil import IDENTITY

    env = dict(os.environ)
    if CHILD_PYTHONPATH:
        env["PYTHONPATH"] = os.pathsep.join([CHILD_PYTHONPATH, *filter(None, [env.get("PYTHONPATH")])])
    for k in ("NEUROMIRROR_ROOT", "NEUROMIRROR_INDEX", "NEUROMIRROR_ENGINE", "NEUROMIRROR_DANDI_API"):
        env.pop(k, None)
    # children start as an installed neuromirror does, from cached bytecode: with the variable set (as
    # some shells and CI images set it) every child compiled each module it imported, ~0.05-0.1 s a process
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(IDENTITY)
    env.setdefault("DANDI_NO_ET", "1")
    env.setdefault("DANDI_CACHE", "ignore")
    env.setdefault("NEUROMIRROR_HTTP_RETRIES", "3")
    return env


def machine() -> dict:
    info: dict[str, Any] = {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["ram_gb"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    for name, cmd in (("git", ["git", "--version"]), ("git-annex", ["git", "annex", "version", "--raw"])):
        try:
            info[name] = subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            info[name] = None
    try:
        import datalad
        import moto

        info["datalad"] = datalad.__version__
        info["moto"] = moto.__version__
    except Exception:
        pass
    info["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def startup_time(repeat: int = 5) -> dict:
    say("start-up: neuromirror --help ...")
    env = child_env()
    walls = [run_measured([*neuromirror_cmd(), "--help"], env=env)["wall"] for _ in range(repeat)]
    bare = [run_measured([sys.executable, "-c", "pass"], env=env)["wall"] for _ in range(repeat)]
    probe = (
        "import sys; sys.argv=['neuromirror','--help']\nfrom neuromirror.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY:' + ','.join(sorted(m for m in ('datalad','dandi','boto3','botocore','pandas','requests',"
        "'sqlite_utils','moto') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env).stdout
    # the marked line, not the help text's last line: with nothing heavy imported the list is empty
    heavy = next((line[len("HEAVY:") :] for line in reversed(out.splitlines()) if line.startswith("HEAVY:")), "")
    res = {
        "help_s": round(statistics.median(walls), 3),
        "python_s": round(statistics.median(bare), 3),
        "heavy_modules_on_help": heavy.split(",") if heavy else [],
    }
    say(
        f"start-up: --help {res['help_s']:.3f} s (bare python {res['python_s']:.3f} s); "
        f"heavy modules imported: {res['heavy_modules_on_help'] or 'none'}"
    )
    return res
