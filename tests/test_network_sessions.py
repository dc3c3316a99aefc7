"""The house's ``requests`` sessions (:func:`neuromirror.network.identity.session`) read the environment's
proxy settings once per host, and still go where the environment says: through the proxy
``HTTP_PROXY`` names, straight to a host ``NO_PROXY`` names.  A real HTTP server on loopback stands
in for the proxy (it sees the request's absolute URL); the archive is a port nobody listens on, so
only the proxy can answer."""

from __future__ import annotations

import pickle
from http.server import BaseHTTPRequestHandler
from typing import Any, Iterator

import pytest
import requests

from helpers.loopback import closed_port, serving
from neuromirror.network import identity


@pytest.fixture()
def proxy() -> Iterator[tuple[str, list[str]]]:
    """A proxy answering 200 to every request; the request targets it was given."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_HEAD(self) -> None:  # noqa: N802 (http.server's name)
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url, seen


def use_proxy(monkeypatch: pytest.MonkeyPatch, proxy: str, no_proxy: str = "") -> None:
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, no_proxy)


def test_requests_go_through_the_environments_proxy_and_read_it_once_per_host(
    proxy: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = proxy
    use_proxy(monkeypatch, url)
    read: list[str] = []
    environ_proxies = requests.sessions.get_environ_proxies

    def counted(u: str, no_proxy: Any = None) -> Any:
        read.append(u)
        return environ_proxies(u, no_proxy=no_proxy)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counted)
    archive, other = f"http://127.0.0.1:{closed_port()}", f"http://localhost:{closed_port()}"
    with identity.session() as session:
        for i in range(20):
            assert session.head(f"{archive}/bucket/key{i}", timeout=10).status_code == 200
        assert session.get(f"{other}/x", timeout=10).status_code == 200
        assert session.head(f"{archive}/bucket/key0", timeout=10).status_code == 200
    assert seen == [*(f"{archive}/bucket/key{i}" for i in range(20)), f"{other}/x", f"{archive}/bucket/key0"]
    assert len(read) == 2, read  # one host, then the other: not once a request
    # carried to another process (a Dask task's source holds its session): the same answers
    with pickle.loads(pickle.dumps(identity.session())) as carried:
        assert carried.head(f"{archive}/bucket/carried", timeout=10).status_code == 200
    assert seen[-1] == f"{archive}/bucket/carried"


def test_a_host_no_proxy_names_is_asked_straight(proxy: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, seen = proxy
    use_proxy(monkeypatch, url, no_proxy="127.0.0.1")
    archive = f"http://127.0.0.1:{closed_port()}"
    with identity.session() as session:
        with pytest.raises(requests.exceptions.ConnectionError):  # straight to the archive, which is not there
            session.head(f"{archive}/bucket/key", timeout=10)
        assert session.head(f"http://localhost:{closed_port()}/x", timeout=10).status_code == 200  # not named
    assert len(seen) == 1


def test_a_session_sees_a_no_proxy_set_after_it_read_the_environment(
    proxy: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same rule as the pools' (below): the kept answer is kept under the proxy variables' values, so a
    session already made obeys a NO_PROXY set later (a service's session lives across its cycles)."""
    url, seen = proxy
    use_proxy(monkeypatch, url)
    archive = f"http://127.0.0.1:{closed_port()}"
    with identity.session() as session:
        assert session.head(f"{archive}/bucket/key", timeout=10).status_code == 200  # through the proxy
        use_proxy(monkeypatch, url, no_proxy="127.0.0.1")
        with pytest.raises(requests.exceptions.ConnectionError):  # now straight to the archive: not there
            session.head(f"{archive}/bucket/key", timeout=10)
    assert seen == [f"{archive}/bucket/key"]


def test_urllib3_pools_ask_urllib_once_per_host_and_see_a_changed_no_proxy(
    proxy: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pools keep's transfers and the S3 listing use (:mod:`neuromirror.network.pools`): urllib's answer,
    which walks the whole environment, is asked once per host; a NO_PROXY set later is still obeyed."""
    import urllib.request

    import urllib3

    from neuromirror.network.pools import Pools

    url, seen = proxy
    use_proxy(monkeypatch, url)
    asked: list[int] = []
    getproxies = urllib.request.getproxies

    def counted() -> Any:
        asked.append(1)
        return getproxies()

    monkeypatch.setattr(urllib.request, "getproxies", counted)
    pools = Pools(4, retries=urllib3.Retry(total=0))
    archive = f"http://127.0.0.1:{closed_port()}"
    for i in range(20):
        assert pools.manager(f"{archive}/k{i}").request("GET", f"{archive}/k{i}").status == 200
    assert seen == [f"{archive}/k{i}" for i in range(20)]
    assert len(asked) == 1, asked  # not once a request
    use_proxy(monkeypatch, url, no_proxy="127.0.0.1")
    with pytest.raises(urllib3.exceptions.HTTPError):  # straight to the archive, which is not there
        pools.manager(f"{archive}/k0").request("GET", f"{archive}/k0")
    assert len(seen) == 20 and len(asked) == 2
    pools.clear()
