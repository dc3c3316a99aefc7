"""``neuromirror browse [--port P]``: the index as a read-only website (Datasette), with canned queries.

Datasette is an optional extra (``pip install 'neuromirror[browse]'``); it runs as a
child process (``python -m datasette serve``), on loopback unless ``--host`` says
otherwise, until Ctrl-C or SIGTERM.  See ``neuromirror.index.catalog`` and docs/service.md.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

from neuromirror.commands.common import UserError, root_of


def register(sub: argparse._SubParsersAction) -> None:
    from neuromirror.index.catalog import DEFAULT_PORT

    p = sub.add_parser(
        "browse",
        help="browse the index read-only in a web browser (Datasette), with canned queries",
        description="Serve the SQLite index read-only with Datasette: its tables, and canned queries (which "
        "datasets hold a file with this sha256, the versions of a source, the files of a version, the "
        "failed runs of the last week). Needs the 'browse' extra: pip install 'neuromirror[browse]'.",
    )
    p.add_argument(
        "--port",
        "-p",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to listen on (default {DEFAULT_PORT}; 0: any free port)",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; the catalog has no authentication)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from neuromirror.index import catalog

    root, index = _checked(args)
    port = args.port or _free_port(args.host)
    host_in_url = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host_in_url}:{port}/{catalog.database_name(index)}"
    with tempfile.TemporaryDirectory(prefix="neuromirror-browse-") as tmp:
        command = catalog.datasette_command(index, Path(tmp), args.host, port)
        log = Path(tmp) / "datasette.log"
        verbose = getattr(args, "verbose", 0)
        with log.open("wb") as fh:
            proc = subprocess.Popen(command, stdout=None if verbose else fh, stderr=None if verbose else fh)
        stop = _forward_signals(proc)
        try:
            if not _wait_until_up(proc, url + ".json"):
                proc.wait()
                raise UserError(f"datasette did not start: {_last_line(log) or f'exit status {proc.returncode}'}")
            catalog.write_state(root, url, index)
            print(f"neuromirror: browsing {index} (read-only) at {url} ; Ctrl-C to stop", file=sys.stderr, flush=True)
            code = proc.wait()
            if code not in (0, -signal.SIGTERM, -signal.SIGINT) and not stop.get("signal"):
                raise UserError(f"datasette exited ({code}): {_last_line(log) or 'no message'}")
            return 0
        finally:
            catalog.remove_state(root)
            _stop(proc)


def _checked(args: argparse.Namespace) -> tuple[Path, Path]:
    """(the root, its index), once Datasette, the index and --port are there and a non-loopback --host is warned of."""
    from neuromirror.index import catalog
    from neuromirror.service import is_loopback

    if not catalog.datasette_available():
        raise UserError("browse needs Datasette, which is not installed: pip install 'neuromirror[browse]'")
    root = root_of(args)
    index = Path(args.index).absolute() if args.index else root / ".neuromirror" / "index.sqlite"
    if not index.exists():
        raise UserError(f"no index at {index}: nothing mirrored there yet (run: neuromirror sync SPEC)")
    if not 0 <= args.port <= 65535:
        raise UserError("--port must be a number from 0 to 65535")
    if not is_loopback(args.host):
        print(
            f"neuromirror: warning: --host {args.host} is not a loopback address: the catalog has no authentication",
            file=sys.stderr,
        )
    return root, index


def _stop(proc: subprocess.Popen) -> None:
    """Datasette stopped if it still runs: SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _free_port(host: str) -> int:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _forward_signals(proc: subprocess.Popen) -> dict[str, Any]:
    """SIGTERM/SIGINT stop Datasette (and so this command, cleanly)."""
    seen: dict[str, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        seen["signal"] = signum
        if proc.poll() is None:
            proc.terminate()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    return seen


def _wait_until_up(proc: subprocess.Popen, url: str, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


def _last_line(log: Path) -> Optional[str]:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else None
