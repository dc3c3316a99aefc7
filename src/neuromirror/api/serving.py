"""The API's verbs that serve the mirror to others: the view of every pin as a WSGI app, and the index as a website.

``Mirror.view()`` is the application ``serve --http`` (and ``serve --no-schedule``, ``demo --serve``) mounts for
``/dav/``, ``/dandisets/``, ``/zarrs/``, ``/zarr/`` and ``/zarr-manifests/`` (:class:`neuromirror.read.view.View`): a script
mounts it in any WSGI server.  ``Mirror.browse()`` is ``neuromirror browse``: Datasette over the index, as a child
process, until it ends.  :meth:`Serving.around` lends the API to a caller that already holds the mirror's datasets
(the service's worker threads, each with its own SQLite connection), so that their steps are API calls too.
"""

from __future__ import annotations

import ipaddress
import signal
import subprocess
import tempfile
import time
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, TypeVar

from neuromirror.api.base import MirrorBase
from neuromirror.errors import BadInput, UserError
from neuromirror.index.catalog import DEFAULT_PORT as BROWSE_PORT
from neuromirror.network import identity
from neuromirror.network.ports import free_port
from neuromirror.results import Item, Result, Status

if TYPE_CHECKING:
    from neuromirror.read.view import View

_S = TypeVar("_S", bound="Serving")
#: how long Datasette gets to answer its first request
BROWSE_START = 60.0


def is_loopback(host: str) -> bool:
    """Is ``host`` this machine only (``localhost``, 127.0.0.0/8, ``::1``): what no other machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def catalog_url(root: Path) -> Optional[str]:
    """The URL of the catalog (``neuromirror browse``) left running over ``root``'s index; None: none runs."""
    from neuromirror.index.catalog import running_catalog

    found = running_catalog(root)
    return str(found["url"]) if found else None


@dataclass
class Browsed(Result):
    """What ``browse`` served: the catalog's URL and the index behind it (``browse`` ends when Datasette does)."""

    url: str
    index: str

    def items(self) -> Iterable[Item]:
        yield Item(Status.OK, self.url, f"{self.index} browsed read-only")

    def to_json(self) -> dict[str, str]:
        return {"url": self.url, "index": self.index}

    def lines(self) -> list[str]:
        return [f"browsed {self.index} at {self.url}"]


class Serving(MirrorBase):
    """The API's verbs that serve: the view's WSGI app, the index's website; the API around open datasets."""

    @classmethod
    def around(cls: type[_S], datasets: Any) -> _S:
        """The API on a :class:`neuromirror.dataset.mirror.Datasets` the caller opened and closes itself (the
        service's worker holds one per thread): no second connection to the index, nothing closed here."""
        m = cls.__new__(cls)
        m.datasets = datasets
        return m

    def view(self, *, include_embargoed: bool = False) -> View:
        """The WSGI application of the read-only view of every pin: ``/dav/ARCHIVE/NAME/VERSION/PATH`` (WebDAV,
        HTML and JSON listings), dandidav's ``/dandisets/`` and ``/zarrs/``, the archive's designed ``/zarr/``,
        ``/zarr-manifests/``.  A file answers
        with a redirect to the URL serving exactly its bytes, or its bytes when only git or the lab's store holds
        them.  ``include_embargoed``: embargoed dandisets too (else absent: 404), and then no answer carries CORS
        headers (no page of another origin may read them through a browser).  ``.tree.close()`` when done."""
        from neuromirror.publish.credentials import embargo_of
        from neuromirror.read.view import View

        index = str(self.datasets.index_path)
        hidden = None if include_embargoed else embargo_of
        return View(self.root, index, hidden=hidden, cors=not include_embargoed)

    def browse(
        self,
        *,
        host: str = "127.0.0.1",
        port: Optional[int] = None,
        verbose: bool = False,
        say: Callable[[str], None] = lambda line: None,
    ) -> Browsed:
        """The index as a read-only website (Datasette, with canned queries) on ``host``:``port`` (None: the
        catalog's default; 0: any free port), until Datasette ends or SIGTERM/SIGINT stops it (``neuromirror
        browse``).  ``say`` hears a warning (a ``host`` that is not loopback: the catalog has no
        authentication) and the URL once it answers.  Datasette missing or failing is a :class:`UserError`."""
        from neuromirror.index import catalog

        index = self._browsable(host, BROWSE_PORT if port is None else port, say)
        chosen = port if port else (free_port(host) if port == 0 else BROWSE_PORT)
        url = f"http://{f'[{host}]' if ':' in host else host}:{chosen}/{catalog.database_name(index)}"
        with tempfile.TemporaryDirectory(prefix="neuromirror-browse-") as tmp:
            log = Path(tmp) / "datasette.log"
            with log.open("wb") as fh:
                out = None if verbose else fh
                command = catalog.datasette_command(index, Path(tmp), host, chosen)
                proc = subprocess.Popen(command, stdout=out, stderr=out)
            try:
                _run_datasette(proc, url, index, log, lambda: catalog.write_state(self.root, url, index), say)
            finally:
                catalog.remove_state(self.root)
                _stop(proc)
        return Browsed(url, str(index))

    def _browsable(self, host: str, port: int, say: Callable[[str], None]) -> Path:
        """The index, once Datasette, the index and the port are there; a host that is not loopback is warned of."""
        from neuromirror.index import catalog

        if not catalog.datasette_available():
            raise UserError("browse needs Datasette, which is not installed: pip install 'neuromirror[browse]'")
        index = Path(self.datasets.index_path).absolute()
        if not index.exists():
            raise BadInput(f"no index at {index}: nothing mirrored there yet (run: neuromirror sync SPEC)")
        if not 0 <= port <= 65535:
            raise BadInput("the port must be a number from 0 to 65535")
        if not is_loopback(host):
            say(f"warning: host {host} is not a loopback address: the catalog has no authentication")
        return index


def _run_datasette(
    proc: subprocess.Popen[bytes], url: str, index: Path, log: Path, up: Callable[[], None], say: Callable[[str], None]
) -> None:
    """Wait for Datasette to answer, say where, and wait for it to end (SIGTERM/SIGINT end it cleanly)."""
    stopped = _forward_signals(proc)
    try:
        if not _wait_until_up(proc, url + ".json"):
            proc.wait()
            raise UserError(f"datasette did not start: {_last_line(log) or f'exit status {proc.returncode}'}")
        up()
        say(f"browsing {index} (read-only) at {url} ; Ctrl-C to stop")
        code = proc.wait()
    finally:  # the caller's own handlers back: a notebook's Ctrl-C interrupts again once browse returned
        for sig, before in stopped["before"].items():
            signal.signal(sig, before)
    if code not in (0, -signal.SIGTERM, -signal.SIGINT) and not stopped.get("signal"):
        raise UserError(f"datasette exited ({code}): {_last_line(log) or 'no message'}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Datasette stopped if it still runs: SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _forward_signals(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    """SIGTERM/SIGINT stop Datasette (and so the call, cleanly); ``["before"]``: the handlers they replaced."""
    seen: dict[str, Any] = {"before": {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}}

    def handler(signum: int, frame: Any) -> None:
        seen["signal"] = signum
        if proc.poll() is None:
            proc.terminate()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    return seen


def _wait_until_up(proc: subprocess.Popen[bytes], url: str, timeout: float = BROWSE_START) -> bool:
    """Datasette answers ``url`` with 200 (polled every 0.2 s: a child process has no readiness signal here)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with identity.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


def _last_line(log: Path) -> Optional[str]:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else None
