"""The shaping proxy (standins/network.py) between real clients and the S3 stand-in: bytes pass unchanged,
the client's connection stays alive, round trips and bandwidth cost what they are set to, and each fault
kind reaches requests and boto3 as the real network or archive would make it.

Timing checks are lower bounds only; tests wait for states (``proxy.wait_for``), never sleep.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import boto3
import pytest
import requests
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from neuromirror.standins.network import Fault, NetFaults, ShapingProxy, parse_duration, parse_rate

BIG = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB, not compressible
SMALL = b"hello network\n"


@pytest.fixture(scope="module")
def bucket(s3: Any) -> Iterator[str]:
    name = f"net-test-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(name)
    s3.put(name, "small.txt", SMALL)
    s3.put(name, "big.bin", BIG)
    for i in range(3):
        s3.put(name, f"k/{i}", f"key {i}".encode())
    yield name
    s3.delete_bucket(name)


@pytest.fixture
def proxy(s3: Any) -> Iterator[ShapingProxy]:
    with ShapingProxy(s3.endpoint_url) as p:
        yield p


def settled(proxy: ShapingProxy) -> bool:
    """Every request answered and recorded (the client may hold the answer a moment before the proxy is done)."""
    return proxy.in_flight == 0


def anonymous(url: str) -> Any:
    """boto3 as a public-data reader: unsigned, path-style, no retries (each fault shows)."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )


def test_bytes_pass_unchanged_for_requests_and_boto3(proxy: ShapingProxy, bucket: str, s3: Any) -> None:
    with requests.Session() as session:
        assert session.get(f"{proxy.url}/{bucket}/big.bin").content == BIG
        head = session.head(f"{proxy.url}/{bucket}/small.txt")
        assert head.status_code == 200 and head.headers["Content-Length"] == str(len(SMALL))
    client = anonymous(proxy.url)
    assert client.get_object(Bucket=bucket, Key="small.txt")["Body"].read() == SMALL
    listed = client.list_objects_v2(Bucket=bucket, Prefix="k/")
    assert [o["Key"] for o in listed["Contents"]] == ["k/0", "k/1", "k/2"]
    assert proxy.bytes_down >= len(BIG) + len(SMALL)
    # an upload (boto3 sends Expect: 100-continue) goes through too
    writer = boto3.session.Session().client(
        "s3",
        endpoint_url=proxy.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(s3={"addressing_style": "path"}),
    )
    writer.put_object(Bucket=bucket, Key="up/loaded", Body=BIG[:200_000])
    assert requests.get(s3.url(bucket, "up/loaded"), timeout=30).content == BIG[:200_000]


def test_the_client_connection_stays_alive_although_moto_closes_its_own(proxy: ShapingProxy, bucket: str) -> None:
    with requests.Session() as session:
        for i in range(20):
            assert session.get(f"{proxy.url}/{bucket}/k/{i % 3}").content == f"key {i % 3}".encode()
    assert proxy.wait_for(settled)
    assert proxy.connections_accepted == 1
    assert proxy.requests == 20
    assert [r.status for r in proxy.log] == [200] * 20


def test_connection_close_from_the_client_is_honoured(proxy: ShapingProxy, bucket: str) -> None:
    with requests.Session() as session:
        for _ in range(3):
            r = session.get(f"{proxy.url}/{bucket}/small.txt", headers={"Connection": "close"})
            assert r.content == SMALL and r.headers.get("Connection") == "close"
    assert proxy.connections_accepted == 3


class _Odd(BaseHTTPRequestHandler):
    """Answers the way moto and http.server may: close-delimited (HTTP/1.0), chunked, a redirect."""

    def do_GET(self) -> None:
        if self.path == "/close":
            self.protocol_version = "HTTP/1.0"
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"until the end")
            self.close_connection = True
        elif self.path == "/chunked":
            self.protocol_version = "HTTP/1.1"
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"chunked ", b"answer"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.protocol_version = "HTTP/1.1"
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/close")
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_close_delimited_chunked_and_redirect_answers_keep_the_client_connection() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Odd)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    upstream = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with ShapingProxy(upstream) as proxy, requests.Session() as session:
            assert session.get(f"{proxy.url}/close").content == b"until the end"
            assert session.get(f"{proxy.url}/chunked").content == b"chunked answer"
            moved = session.get(f"{proxy.url}/elsewhere", allow_redirects=False)
            assert moved.status_code == 302 and moved.headers["Location"] == f"{upstream}/close"  # unchanged
            assert proxy.connections_accepted == 1
    finally:
        server.shutdown()
        server.server_close()


def test_an_upstream_that_is_down_answers_502() -> None:
    with ShapingProxy("http://127.0.0.1:1") as proxy:
        assert requests.get(f"{proxy.url}/x", timeout=30).status_code == 502


def test_a_round_trip_is_added_and_concurrent_requests_do_not_wait_for_each_other(
    proxy: ShapingProxy, bucket: str
) -> None:
    proxy.set_rtt(0.2)
    started = time.monotonic()
    assert requests.head(f"{proxy.url}/{bucket}/small.txt", timeout=30).status_code == 200
    assert time.monotonic() - started >= 0.18
    local = threading.local()

    def head(_: int) -> int:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        return session.head(f"{proxy.url}/{bucket}/small.txt", timeout=30).status_code

    # a round trip of 1 s: 32 delays one after the other take 32 s, side by side 1 s and the threads' own time,
    # which a loaded 2-core machine stretches (1.2 s at RTT 0.2 beside a busy suite, where the bound was 3 s)
    proxy.set_rtt(1.0)
    with ThreadPoolExecutor(32) as pool:
        started = time.monotonic()
        assert set(pool.map(head, range(32))) == {200}
        elapsed = time.monotonic() - started
    assert elapsed < 16.0, f"32 HEADs at RTT 1 s took {elapsed:.2f} s: the delays serialize"
    assert proxy.max_in_flight >= 2


def test_first_five_tries_of_each_matching_key_fail_then_pass(proxy: ShapingProxy, bucket: str) -> None:
    plan = NetFaults([Fault("503", match=rf"^GET /{bucket}/k/", first=5, retry_after=1)])
    proxy.faults = plan
    with requests.Session() as session:
        for key in ("k/0", "k/1"):
            answers = [session.get(f"{proxy.url}/{bucket}/{key}") for _ in range(6)]
            assert [r.status_code for r in answers] == [503] * 5 + [200]
            assert answers[0].json()["detail"] and answers[0].headers["Retry-After"] == "1"
            assert answers[-1].content == f"key {key[-1]}".encode()
        assert session.get(f"{proxy.url}/{bucket}/small.txt").status_code == 200
        assert session.head(f"{proxy.url}/{bucket}/k/2").status_code == 200  # a HEAD does not match
    assert [(m, kind) for _, m, _, kind in plan.injected] == [("GET", "503")] * 10
    assert proxy.wait_for(settled)
    assert sum(1 for r in proxy.log if r.kind == "503" and r.status == 503) == 10
    assert proxy.connections_accepted == 1  # an error answer keeps the connection


def test_slowdown_is_s3_xml_that_botocore_reads_and_pays_the_round_trip(proxy: ShapingProxy, bucket: str) -> None:
    proxy.faults = NetFaults([Fault("slowdown", match="small.txt", first=1, retry_after=0.5)])
    proxy.set_rtt(0.2)
    client = anonymous(proxy.url)
    started = time.monotonic()
    with pytest.raises(ClientError) as caught:
        client.get_object(Bucket=bucket, Key="small.txt")
    assert time.monotonic() - started >= 0.18
    assert caught.value.response["Error"]["Code"] == "SlowDown"
    assert caught.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "0.5"
    assert client.get_object(Bucket=bucket, Key="small.txt")["Body"].read() == SMALL  # the second try passes
    proxy.faults = NetFaults([Fault("slowdown", first=1, retry_after=2)])
    r = requests.get(f"{proxy.url}/{bucket}/k/0", timeout=30)
    assert r.status_code == 503 and r.headers["Content-Type"] == "application/xml"
    assert r.headers["Retry-After"] == "2" and b"<Code>SlowDown</Code>" in r.content


def test_reset_mid_body_breaks_the_read_after_the_headers(proxy: ShapingProxy, bucket: str) -> None:
    proxy.faults = NetFaults([Fault("reset", match="big.bin", first=1)])
    r = requests.get(f"{proxy.url}/{bucket}/big.bin", stream=True, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Length"] == str(len(BIG))
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        r.content  # noqa: B018 - reading the body is the point
    assert requests.get(f"{proxy.url}/{bucket}/big.bin", timeout=30).content == BIG


def test_a_stall_is_ended_by_the_client_timeout_and_by_stop(s3: Any, bucket: str) -> None:
    with ShapingProxy(s3.endpoint_url, faults=NetFaults([Fault("stall", match="small.txt", first=1)])) as proxy:
        with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            requests.get(f"{proxy.url}/{bucket}/small.txt", timeout=0.5).content  # noqa: B018
        assert proxy.in_flight == 1  # still stalled (stall_seconds 30)
        assert requests.get(f"{proxy.url}/{bucket}/small.txt", timeout=30).content == SMALL
    assert proxy.in_flight == 0  # stop() woke the stall


def test_refuse_resets_the_connection_before_reading_or_after_a_matching_request(
    proxy: ShapingProxy, bucket: str
) -> None:
    proxy.faults = NetFaults([Fault("refuse", first=2)])
    for _ in range(2):
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"{proxy.url}/{bucket}/small.txt", timeout=30)
    assert requests.get(f"{proxy.url}/{bucket}/small.txt", timeout=30).content == SMALL
    assert proxy.requests == 1 and [r.kind for r in proxy.log] == ["refuse", "refuse", None]
    proxy.faults = NetFaults([Fault("refuse", match=r"^GET /.*/k/1$", first=1)])
    with requests.Session() as session:
        assert session.get(f"{proxy.url}/{bucket}/k/0").status_code == 200
        with pytest.raises(requests.exceptions.ConnectionError):
            session.get(f"{proxy.url}/{bucket}/k/1")
        assert session.get(f"{proxy.url}/{bucket}/k/1").content == b"key 1"


def test_until_ends_the_faults_after_the_window(proxy: ShapingProxy, bucket: str) -> None:
    plan = NetFaults([Fault("429", rate=1.0, until=1.0, retry_after=1)])
    proxy.faults = plan  # armed now
    assert requests.get(f"{proxy.url}/{bucket}/small.txt", timeout=30).status_code == 429
    assert proxy.wait_for(lambda p: not plan.active(), timeout=30)
    assert requests.get(f"{proxy.url}/{bucket}/small.txt", timeout=30).content == SMALL
    plan.arm()
    assert plan.active() == plan.rules
    assert requests.get(f"{proxy.url}/{bucket}/small.txt", timeout=30).status_code == 429
    assert len(plan.injected) == 2


def test_rate_draws_are_deterministic(proxy: ShapingProxy, bucket: str) -> None:
    def run() -> list[int]:
        proxy.faults = NetFaults([Fault("504", match="/k/", rate=0.5)], seed=7)
        with requests.Session() as session:
            return [session.get(f"{proxy.url}/{bucket}/k/{i % 3}").status_code for i in range(30)]

    first = run()
    assert set(first) == {200, 504}
    assert run() == first


def test_the_bandwidth_cap_paces_a_body(proxy: ShapingProxy, bucket: str) -> None:
    proxy.set_bandwidth(parse_rate("2MB/s"))
    started = time.monotonic()
    assert requests.get(f"{proxy.url}/{bucket}/big.bin", timeout=30).content == BIG
    assert time.monotonic() - started >= 0.4
    proxy.set_bandwidth(None)
    assert proxy.wait_for(settled)
    proxy.reset_stats()
    assert proxy.requests == 0 and proxy.log == [] and proxy.bytes_down == 0


def test_stop_closes_the_listener(s3: Any) -> None:
    proxy = ShapingProxy(s3.endpoint_url).start()
    url = proxy.url
    proxy.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{url}/", timeout=30)


def test_parse_duration_and_rate() -> None:
    assert parse_duration("50ms") == pytest.approx(0.05)
    assert parse_duration("0.2s") == pytest.approx(0.2)
    assert parse_duration("1") == 1.0
    assert parse_duration("2m") == 120.0
    assert parse_rate("10MB/s") == 10e6
    assert parse_rate("10M") == 10e6
    assert parse_rate("80Mbit") == 10e6
    assert parse_rate("80Mbps") == 10e6
    assert parse_rate("1MiB/s") == 1 << 20
    assert parse_rate("500k") == 500e3
    for bad in ("fast", "-1s", "", "5 parsecs"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)
    with pytest.raises(ValueError, match="not a rate"):
        parse_rate("quick")
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("teapot")
