"""The BOSS stand-in, exercised through the real ``intern`` client.

Why: the BOSS mirror is only as trustworthy as the stand-in it is tested
against, so these tests pin down that intern 1.4's ``BossRemote`` runs unchanged
against it (listing, resource metadata, cutouts of every datatype, resolution
levels, chunked and parallel fetches) and that failures (bad token, bad ranges,
injected faults) surface in a way the mirror tool can explain.
"""

from __future__ import annotations

import io
import json
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import blosc
import numpy as np
import pytest
import requests
from intern.remote.boss import BossRemote
from intern.resource.boss.resource import ChannelResource, CollectionResource
from requests import HTTPError

from neuromirror.standins.boss.sample import (
    SAMPLE_CHANNELS,
    SAMPLE_COLLECTION,
    SAMPLE_COORD_FRAME,
    SAMPLE_EXPERIMENT,
)
from neuromirror.standins.boss.server import BossStandIn

C, E = SAMPLE_COLLECTION, SAMPLE_EXPERIMENT
Z, Y, X = 40, 700, 600  # the sample's default shape
TIMEOUT = 10  # seconds, for raw requests: a hung stand-in must fail fast


@pytest.fixture(scope="session")
def standin() -> Iterator[BossStandIn]:
    with BossStandIn.sample() as boss:
        yield boss


@pytest.fixture(scope="session")
def remote(standin: BossStandIn) -> BossRemote:
    return BossRemote(standin.remote_config())


@pytest.fixture
def small() -> Iterator[BossStandIn]:
    """A private, small stand-in for tests that change data or settings."""
    with BossStandIn.sample(shape=(20, 80, 70)) as boss:
        yield boss


def _get(boss: BossStandIn, path: str, token: str | None = "valid", **headers: str) -> requests.Response:
    if token == "valid":
        token = boss.token
    if token is not None:
        headers["Authorization"] = f"Token {token}"
    return requests.get(boss.url + path, headers=headers, timeout=TIMEOUT)


# ----------------------------------------------------------------------------- metadata


def test_lists(remote: BossRemote) -> None:
    assert remote.list_collections() == [C]
    assert remote.list_experiments(C) == [E]
    assert remote.list_channels(C, E) == list(SAMPLE_CHANNELS)
    assert remote.list_coordinate_frames() == [SAMPLE_COORD_FRAME]


def test_list_routes_intern_uses(standin: BossStandIn, remote: BossRemote) -> None:
    standin.clear_request_log()
    remote.list_collections()
    remote.list_coordinate_frames()
    paths = [r.path for r in standin.request_log]
    assert paths == ["/v1/collection//", "/v1/coord/"]


def test_get_collection(remote: BossRemote) -> None:
    coll = remote.get_project(CollectionResource(C))
    assert coll.name == C
    assert coll.description
    assert coll.raw["experiments"] == [E]
    assert coll.creator == BossStandIn.creator


def test_get_experiment_and_coord_frame(remote: BossRemote) -> None:
    exp = remote.get_experiment(C, E)
    assert exp.coord_frame == SAMPLE_COORD_FRAME
    assert exp.num_hierarchy_levels == 2
    assert exp.hierarchy_method == "anisotropic"
    assert exp.num_time_samples == 1
    assert exp.raw["channels"] == list(SAMPLE_CHANNELS)
    assert exp.raw["collection"] == C

    cf = remote.get_coordinate_frame(SAMPLE_COORD_FRAME)
    assert (cf.x_start, cf.x_stop, cf.y_start, cf.y_stop, cf.z_start, cf.z_stop) == (0, X, 0, Y, 0, Z)
    assert (cf.x_voxel_size, cf.y_voxel_size, cf.z_voxel_size) == (4.0, 4.0, 40.0)
    assert cf.voxel_unit == "nanometers"
    assert remote.get_extents(exp) == [[0, X], [0, Y], [0, Z]]


@pytest.mark.parametrize("name", list(SAMPLE_CHANNELS))
def test_get_channel(remote: BossRemote, name: str) -> None:
    chan = remote.get_channel(name, C, E)
    ctype, datatype = SAMPLE_CHANNELS[name]
    assert (chan.name, chan.type, chan.datatype) == (name, ctype, datatype)
    assert chan.cutout_ready
    assert chan.downsample_status == "DOWNSAMPLED"
    assert chan.base_resolution == 0 and chan.default_time_sample == 0
    assert chan.sources == (["image8"] if ctype == "annotation" else [])
    assert chan.raw["storage_type"] == "spdb"


def test_metadata(remote: BossRemote) -> None:
    assert remote.list_metadata(CollectionResource(C)) == ["project"]
    chan = remote.get_channel("image8", C, E)
    assert remote.get_metadata(chan, ["stain"]) == {"stain": "synthetic"}
    assert remote.list_metadata(remote.get_channel("image16", C, E)) == []


def test_downsample_info(standin: BossStandIn) -> None:
    """intern 1.4 has no call for /v1/downsample; the mirror reads it raw."""
    info = _get(standin, f"/v1/downsample/{C}/{E}/image8").json()
    assert info == standin.downsample_info(C, E, "image8")
    assert info["status"] == "DOWNSAMPLED"
    assert info["num_hierarchy_levels"] == 2
    assert info["extent"] == {"0": [X, Y, Z], "1": [X // 2, Y // 2, Z]}
    assert info["voxel_size"] == {"0": [4.0, 4.0, 40.0], "1": [8.0, 8.0, 40.0]}
    assert info["cuboid_size"] == {"0": [512, 512, 16], "1": [512, 512, 16]}


def test_isotropic_levels_and_odd_extents() -> None:
    boss = BossStandIn()
    boss.add_collection("c")
    boss.add_coord_frame("f", 9, 7, 5)
    boss.add_experiment("c", "e", "f", num_hierarchy_levels=3, hierarchy_method="isotropic")
    boss.add_channel("c", "e", "img")
    info = boss.downsample_info("c", "e", "img")
    assert info["extent"] == {"0": [9, 7, 5], "1": [5, 4, 3], "2": [3, 2, 2]}
    for res, (x, y, z) in info["extent"].items():
        assert boss.volume("c", "e", "img", int(res)).shape == (z, y, x)


# ----------------------------------------------------------------------------- cutouts


@pytest.mark.parametrize("name", list(SAMPLE_CHANNELS))
def test_cutout_across_cuboid_borders(standin: BossStandIn, remote: BossRemote, name: str) -> None:
    chan = remote.get_channel(name, C, E)
    x, y, z = [500, 600], [500, 700], [10, 40]  # crosses x=512, y=512, z=16 and z=32
    got = remote.get_cutout(chan, 0, x, y, z)
    want = standin.volume(C, E, name)[10:40, 500:700, 500:600]
    assert got.dtype == np.dtype(SAMPLE_CHANNELS[name][1])
    assert got.shape == (30, 200, 100)
    np.testing.assert_array_equal(got, want)
    assert want.any()


def test_whole_volume_is_one_request(standin: BossStandIn, remote: BossRemote) -> None:
    chan = remote.get_channel("image16", C, E)
    before = standin.request_count
    got = remote.get_cutout(chan, 0, [0, X], [0, Y], [0, Z])
    assert standin.request_count == before + 1
    np.testing.assert_array_equal(got, standin.volume(C, E, "image16"))


@pytest.mark.parametrize("name", ["image8", "annotation"])
def test_resolution_1(standin: BossStandIn, remote: BossRemote, name: str) -> None:
    chan = remote.get_channel(name, C, E)
    level1 = standin.volume(C, E, name, 1)
    assert level1.shape == (Z, Y // 2, X // 2)
    got = remote.get_cutout(chan, 1, [0, X // 2], [0, Y // 2], [0, Z])
    np.testing.assert_array_equal(got, level1)

    # The downsampling is the documented one: block mean / block mode of level 0.
    block = standin.volume(C, E, name)[7, 100:102, 60:62]
    if name == "image8":
        assert level1[7, 50, 30] == int(block.astype(int).sum()) // 4
    else:
        assert level1[7, 50, 30] in block


def test_past_level_extent_is_zero_filled(standin: BossStandIn, remote: BossRemote) -> None:
    """Like the real server, resolution r cutouts are checked against level-0 bounds."""
    chan = remote.get_channel("image8", C, E)
    got = remote.get_cutout(chan, 1, [290, 310], [0, 10], [0, 1])
    np.testing.assert_array_equal(got[:, :, :10], standin.volume(C, E, "image8", 1)[0:1, 0:10, 290:300])
    assert not got[:, :, 10:].any()


def test_chunked_cutout(standin: BossStandIn, remote: BossRemote) -> None:
    chan = remote.get_channel("annotation", C, E)
    before = standin.request_count
    got = remote.get_cutout(chan, 0, [0, X], [0, Y], [0, Z], parallel=False, chunk_size=(256, 256, 16))
    assert standin.request_count - before == 27  # 3 x 3 x 3 blocks
    np.testing.assert_array_equal(got, standin.volume(C, E, "annotation"))


def test_parallel_cutout_processes(standin: BossStandIn, remote: BossRemote) -> None:
    """intern fetches blocks from a multiprocessing pool when parallel is set."""
    chan = remote.get_channel("image8", C, E)
    got = remote.get_cutout(chan, 0, [0, X], [0, Y], [0, Z], parallel=2, chunk_size=(256, 256, 16))
    np.testing.assert_array_equal(got, standin.volume(C, E, "image8"))


def test_concurrent_clients(standin: BossStandIn) -> None:
    rng = np.random.default_rng(7)
    jobs = []
    for i in range(24):
        name = list(SAMPLE_CHANNELS)[i % 3]
        x0, y0, z0 = rng.integers(0, [X - 64, Y - 64, Z - 4])
        jobs.append((name, [int(x0), int(x0) + 64], [int(y0), int(y0) + 64], [int(z0), int(z0) + 4]))

    local = threading.local()

    def fetch(job: tuple) -> bool:
        if not hasattr(local, "rmt"):
            local.rmt = BossRemote(standin.remote_config())
        name, x, y, z = job
        chan = ChannelResource(name, C, E, type=SAMPLE_CHANNELS[name][0], datatype=SAMPLE_CHANNELS[name][1])
        got = local.rmt.get_cutout(chan, 0, x, y, z)
        want = standin.volume(C, E, name)[z[0] : z[1], y[0] : y[1], x[0] : x[1]]
        return bool(np.array_equal(got, want))

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(fetch, jobs))


def test_id_filter(standin: BossStandIn, remote: BossRemote) -> None:
    chan = remote.get_channel("annotation", C, E)
    want = standin.volume(C, E, "annotation")[0:8, 0:96, 0:80]
    keep = [int(i) for i in np.unique(want) if i][:2]
    got = remote.get_cutout(chan, 0, [0, 80], [0, 96], [0, 8], id_list=keep)
    np.testing.assert_array_equal(got, np.where(np.isin(want, keep), want, 0))


def test_time_series() -> None:
    boss = BossStandIn()
    boss.add_collection("c")
    boss.add_coord_frame("f", 30, 20, 10)
    boss.add_experiment("c", "e", "f", num_time_samples=3, num_hierarchy_levels=1)
    data = np.arange(3 * 10 * 20 * 30, dtype=np.uint16).reshape(3, 10, 20, 30)
    boss.add_channel("c", "e", "ts", datatype="uint16", data=data, default_time_sample=1)
    with boss:
        rmt = BossRemote(boss.remote_config())
        chan = rmt.get_channel("ts", "c", "e")
        np.testing.assert_array_equal(rmt.get_cutout(chan, 0, [0, 30], [0, 20], [0, 10], time_range=[0, 3]), data)
        np.testing.assert_array_equal(rmt.get_cutout(chan, 0, [0, 30], [0, 20], [0, 10]), data[1])
        with pytest.raises(HTTPError, match=r"\(400\).*Invalid time range"):
            rmt.get_cutout(chan, 0, [0, 30], [0, 20], [0, 10], time_range=[2, 4])


def test_set_volume_changes_all_levels(small: BossStandIn) -> None:
    rmt = BossRemote(small.remote_config())
    chan = rmt.get_channel("annotation", C, E)
    edited = small.volume(C, E, "annotation").copy()
    edited[:, 0:10, 0:10] = 42
    small.set_volume(C, E, "annotation", edited)
    np.testing.assert_array_equal(rmt.get_cutout(chan, 0, [0, 70], [0, 80], [0, 20]), edited)
    assert (rmt.get_cutout(chan, 1, [0, 5], [0, 5], [0, 20]) == 42).all()
    with pytest.raises(ValueError, match="shape"):
        small.set_volume(C, E, "annotation", edited[:, :10])
    with pytest.raises(ValueError):
        small.volume(C, E, "annotation").__setitem__((0, 0, 0), 1)  # served arrays are read-only


@pytest.mark.parametrize(
    "accept, decode",
    [
        ("application/blosc", lambda b: np.frombuffer(blosc.decompress(b), np.uint16).reshape(2, 3, 4)),
        ("application/blosc-python", blosc.unpack_array),
        ("application/npygz", lambda b: np.load(io.BytesIO(zlib.decompress(b)))),
        (None, lambda b: np.frombuffer(blosc.decompress(b), np.uint16).reshape(2, 3, 4)),
    ],
)
def test_cutout_encodings(standin: BossStandIn, accept: str | None, decode) -> None:
    headers = {"Accept": accept} if accept else {}
    resp = _get(standin, f"/v1/cutout/{C}/{E}/image16/0/5:9/6:9/7:9/", **headers)
    assert resp.status_code == 200
    np.testing.assert_array_equal(decode(resp.content), standin.volume(C, E, "image16")[7:9, 6:9, 5:9])
    assert _get(standin, f"/v1/cutout/{C}/{E}/image16/0/5:9/6:9/7:9", Accept="image/png").status_code == 406


# ----------------------------------------------------------------------------- errors


def test_wrong_token_is_explained(standin: BossStandIn) -> None:
    bad = BossRemote(standin.remote_config(token="not-the-token"))
    with pytest.raises(HTTPError, match=r"\(401\) - .*Invalid token") as info:
        bad.list_collections()
    assert info.value.response.status_code == 401
    assert info.value.response.json() == {"detail": "Invalid token."}
    assert standin.request_log[-1].auth == "invalid"
    with pytest.raises(HTTPError, match=r"\(401\) - .*Invalid token"):
        bad.get_channel("image8", C, E)
    chan = ChannelResource("image8", C, E, datatype="uint8")
    with pytest.raises(HTTPError, match=r"Get cutout failed on image8, got HTTP response: \(401\)"):
        bad.get_cutout(chan, 0, [0, 10], [0, 10], [0, 1])


def test_empty_token(standin: BossStandIn) -> None:
    with pytest.raises(HTTPError, match="No credentials provided"):
        BossRemote(standin.remote_config(token="")).list_collections()


def test_anonymous_sees_only_public(small: BossStandIn) -> None:
    """No Authorization header: the BOSS answers as for an anonymous user."""
    assert _get(small, "/v1/collection/", token=None).json() == {"collections": []}
    resp = _get(small, f"/v1/collection/{C}", token=None)
    assert resp.status_code == 403
    assert resp.json() == {
        "status": 403,
        "code": 3001,
        "message": f"Missing read permissions on the resource {C}",
    }
    assert _get(small, f"/v1/cutout/{C}/{E}/image8/0/0:1/0:1/0:1", token=None).status_code == 403
    small.add_collection("open", public=True)
    small.add_experiment("open", "e", SAMPLE_COORD_FRAME, public=True)
    small.add_channel("open", "e", "img", public=True)
    assert _get(small, "/v1/collection/", token=None).json() == {"collections": ["open"]}
    assert _get(small, "/v1/cutout/open/e/img/0/0:1/0:1/0:1", token=None).status_code == 200


def test_not_found(remote: BossRemote) -> None:
    with pytest.raises(HTTPError, match=r"\(404\).*nope does not exist"):
        remote.get_experiment(C, "nope")
    with pytest.raises(HTTPError, match=r"\(404\).*nope does not exist"):
        remote.get_channel("nope", C, E)


def test_bad_cutout_arguments(remote: BossRemote) -> None:
    chan = remote.get_channel("image8", C, E)
    with pytest.raises(HTTPError, match=r"\(400\).*Incorrect cutout arguments 0/0:10/0:10/0:41"):
        remote.get_cutout(chan, 0, [0, 10], [0, 10], [0, Z + 1])
    with pytest.raises(HTTPError, match=r"\(400\).*Invalid resolution 2"):
        remote.get_cutout(chan, 2, [0, 10], [0, 10], [0, 1])


def test_too_large(small: BossStandIn) -> None:
    small.cutout_max_bytes = 1000
    resp = _get(small, f"/v1/cutout/{C}/{E}/image8/0/0:10/0:10/0:11/")
    assert resp.status_code == 413
    assert resp.json()["code"] == 2000
    # uint64 annotations may be 4x larger, as on the real server
    assert _get(small, f"/v1/cutout/{C}/{E}/annotation/0/0:10/0:10/0:5/").status_code == 200


def test_unknown_route_and_method(standin: BossStandIn) -> None:
    assert _get(standin, "/v1/nothing/here").status_code == 404
    resp = requests.post(standin.url + f"/v1/collection/{C}", json={}, timeout=TIMEOUT)
    assert resp.status_code == 405


def test_request_log(standin: BossStandIn, remote: BossRemote) -> None:
    standin.clear_request_log()
    chan = remote.get_channel("image8", C, E)
    remote.get_cutout(chan, 0, [0, 4], [0, 4], [0, 1])
    log = standin.request_log
    assert [(r.method, r.route, r.auth, r.status) for r in log] == [
        ("GET", "channel", "token", 200),
        ("GET", "cutout", "token", 200),
    ]
    assert log[1].path == f"/v1/cutout/{C}/{E}/image8/0/0:4/0:4/0:1/?access-mode=no-cache"
    assert log[1].response_bytes > 0


# ----------------------------------------------------------------------------- faults and config


def test_fault_plan(small: BossStandIn) -> None:
    faults = pytest.importorskip("neuromirror.standins.faults")
    rmt = BossRemote(small.remote_config())
    chan = rmt.get_channel("image8", C, E)
    small.faults = faults.FaultPlan()
    small.faults.fail_next(1, "503")
    with pytest.raises(HTTPError, match=r"\(503\)"):
        rmt.get_cutout(chan, 0, [0, 4], [0, 4], [0, 1])
    small.faults.fail_next(1, "truncated")
    with pytest.raises(requests.exceptions.RequestException):
        rmt.get_cutout(chan, 0, [0, 4], [0, 4], [0, 1])
    small.faults.fail_next(1, "reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        rmt.get_cutout(chan, 0, [0, 4], [0, 4], [0, 1])
    got = rmt.get_cutout(chan, 0, [0, 4], [0, 4], [0, 1])  # the plan is spent: back to normal
    np.testing.assert_array_equal(got, small.volume(C, E, "image8")[0:1, 0:4, 0:4])
    assert [r.fault for r in small.request_log[-4:]] == ["503", "truncated", "reset", None]


def test_stop_is_quick_during_timeout_fault(small: BossStandIn) -> None:
    faults = pytest.importorskip("neuromirror.standins.faults")
    small.faults = faults.FaultPlan(timeout_seconds=30)
    small.faults.fail_next(1, "timeout")
    waiter = threading.Thread(target=lambda: _swallow(lambda: _get(small, "/v1/coord/")), daemon=True)
    waiter.start()
    time.sleep(0.2)
    started = time.monotonic()
    small.stop()
    waiter.join(5)
    assert time.monotonic() - started < 5 and not waiter.is_alive()


def _swallow(fn) -> None:
    try:
        fn()
    except requests.RequestException:
        pass


def test_restart_keeps_port(small: BossStandIn) -> None:
    url = small.url
    small.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/v1/coord/", timeout=TIMEOUT)
    small.start()
    assert small.url == url
    assert _get(small, "/v1/coord/").status_code == 200


def test_intern_env_config(standin: BossStandIn, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """BossRemote() without arguments reads INTERN_* when ~/.intern/intern.cfg is absent."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for key, value in standin.env().items():
        monkeypatch.setenv(key, value)
    rmt = BossRemote()
    assert rmt.list_collections() == [C]

    import intern  # intern.array builds its own BossRemote() from the same settings

    arr = intern.array(f"bossdb://{C}/{E}/image8")
    assert arr.shape == (Z, Y, X)
    np.testing.assert_array_equal(arr[3:5, 100:120, 200:230], standin.volume(C, E, "image8")[3:5, 100:120, 200:230])


def test_sample_is_deterministic(small: BossStandIn) -> None:
    other = BossStandIn.sample(shape=(20, 80, 70))
    for name in SAMPLE_CHANNELS:
        for res in (0, 1):
            np.testing.assert_array_equal(other.volume(C, E, name, res), small.volume(C, E, name, res))


def test_error_json_shape(standin: BossStandIn) -> None:
    body = _get(standin, f"/v1/cutout/{C}/{E}/nope/0/0:1/0:1/0:1/").json()
    assert body == {"status": 404, "code": 4000, "message": "Channel nope not found"}
    assert json.loads(_get(standin, "/v1/coord/nope").text)["message"] == "nope does not exist."
