"""A listing page survives what an archive's S3 does on a bad day, through the urllib3 client
(issue 40: ``requests`` cost ~1 ms of CPU a page): a 503, a body cut short and a dropped
connection are asked again; a 403 is raised at once as botocore's ``ClientError`` with the
server's code; a port nobody listens on is botocore's ``EndpointConnectionError``.  The server is
a real HTTP server on loopback that answers as it is told, one answer per request; the same server
stands in for the proxy ``HTTP_PROXY`` names, which the listing goes through unless ``NO_PROXY``
names the host (as ``requests`` did)."""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler
from typing import Iterator

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from helpers.loopback import closed_port, serving
from neuromirror.sources import s3listing
from neuromirror.sources.dandi.unsigned_s3 import UnsignedS3

PAGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<Name>b</Name><Prefix>z/</Prefix><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>"
    b"<Version><Key>z/0</Key><VersionId>v1</VersionId><IsLatest>true</IsLatest>"
    b"<LastModified>2025-06-01T00:00:00.000Z</LastModified><ETag>&quot;00&quot;</ETag><Size>1</Size></Version>"
    b"</ListVersionsResult>"
)
DENIED = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"


class Script:
    """What the server answers, request after request: (status, body, cut) — ``cut`` promises more
    bytes than it sends, then closes; ``None`` drops the connection without a word."""

    def __init__(self) -> None:
        self.answers: list = []
        self.requests = 0
        self.paths: list[str] = []  # as the request line gave them (absolute through a proxy)


@pytest.fixture()
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            script.requests += 1
            script.paths.append(self.path)
            answer = script.answers.pop(0) if script.answers else (200, PAGE, False)
            if answer is None:
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            status, body, cut = answer
            self.send_response(status)
            self.send_header("Content-Length", str(len(body) + (100 if cut else 0)))
            self.end_headers()
            self.wfile.write(body)
            if cut:
                self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url, script


def keys(endpoint: str) -> list[str]:
    client = UnsignedS3(endpoint)
    client.meta.config.retries = {"max_attempts": 4}
    client.meta.config.read_timeout = 5
    return [v["Key"] for page in s3listing.paginate_versions(client, Bucket="b", Prefix="z/") for v in page["Versions"]]


def test_a_503_a_cut_body_and_a_dropped_connection_are_asked_again(server) -> None:  # noqa: ANN001
    endpoint, script = server
    script.answers = [(503, b"<Error><Code>SlowDown</Code></Error>", False), (200, PAGE[:-40], True), None]
    assert keys(endpoint) == ["z/0"]
    assert script.requests == 4


def test_a_denied_listing_is_botocores_client_error_at_once(server) -> None:  # noqa: ANN001
    endpoint, script = server
    script.answers = [(403, DENIED, False)]
    with pytest.raises(ClientError) as got:
        keys(endpoint)
    assert got.value.response["Error"]["Code"] == "AccessDenied"
    assert script.requests == 1


def test_nobody_listening_is_an_endpoint_connection_error() -> None:
    with pytest.raises(EndpointConnectionError):
        keys(f"http://127.0.0.1:{closed_port()}")


def test_the_listing_goes_through_the_environments_proxy(server, monkeypatch) -> None:  # noqa: ANN001
    proxy, script = server
    archive = f"http://127.0.0.1:{closed_port()}"  # nobody there: only the proxy can answer
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("http_proxy", proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert keys(archive) == ["z/0"]
    assert script.paths and script.paths[0].startswith(archive + "/b?versions")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with pytest.raises(EndpointConnectionError):  # straight to the archive, which is not there
        keys(archive)
    assert len(script.paths) == 1
