"""``neuromirror publish --to github:ORG``: every dandiset a repository of an organisation, its Zarr one of another,
as DANDI's own ``dandisets`` organisation is filled, against a GitHub stand-in on loopback.

A user's session: a mirrored dandiset with a Zarr, ``publish --to github:lab --zarr-org lab-zarrs --github-api
URL`` with ``GITHUB_TOKEN`` set, then what GitHub holds read through its API (the stand-in's call counts, and
PyGithub as a second client), and a stranger's ``datalad clone`` of the repository's URL + ``datalad get -r``,
whose bytes come from the archive's URLs.
"""

from __future__ import annotations

import json
import os
import subprocess
from base64 import b64encode
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import pytest
import requests

from helpers.retrieve import ZARR, Sample, build_sample, data_files, git, without_metadata
from neuromirror.standins.github.server import GitHubStandIn

ORG, ZORG = "lab", "lab-zarrs"


@pytest.fixture(scope="module")
def github(tmp_path_factory) -> Iterator[GitHubStandIn]:  # noqa: ANN001
    with GitHubStandIn(tmp_path_factory.mktemp("github")) as gh:
        old = os.environ.get("GITHUB_TOKEN")
        os.environ["GITHUB_TOKEN"] = gh.token
        yield gh
        if old is None:
            del os.environ["GITHUB_TOKEN"]
        else:
            os.environ["GITHUB_TOKEN"] = old


@pytest.fixture(scope="module")
def sample(dandi_archive, tmp_path_factory) -> Sample:  # noqa: ANN001
    return build_sample(dandi_archive, tmp_path_factory.mktemp("ghpub") / "mirror", name="GitHub sample", zarr=True)


def publish(sample: Sample, github: GitHubStandIn, *more: str) -> dict:
    args = ("publish", sample.source, "--to", f"github:{ORG}", "--zarr-org", ZORG, "--github-api", github.api_url)
    res = sample.run.json(*args, *more)
    assert isinstance(res, dict) and res["ok"], res
    return res


@pytest.fixture(scope="module")
def published(sample: Sample, github: GitHubStandIn) -> dict:
    return publish(sample, github)


def sh(cwd: Path, *cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_each_repository_made_once_with_homepage_description_and_releases(
    sample: Sample, github: GitHubStandIn, published: dict
) -> None:
    assert github.calls["POST /orgs/{org}/repos"] == 2  # the dandiset's and its Zarr's
    repo = github.repos[(ORG, sample.id)]
    assert repo["homepage"] == f"https://identifiers.org/DANDI:{sample.id}"
    assert repo["description"].endswith("2 releases, GitHub sample") and " files, " in repo["description"]
    assert not repo["private"]
    (zarr,) = published["published"][0]["zarrs"]
    assert zarr["full_name"].startswith(f"{ZORG}/") and zarr["created"]
    assert sorted(r["tag_name"] for r in github.releases[(ORG, sample.id)]) == sorted([sample.v1, sample.v2])
    # PyGithub, a second client, reads the same
    from github import Auth, Github

    gh = Github(base_url=github.api_url, auth=Auth.Token(github.token))
    r = gh.get_repo(f"{ORG}/{sample.id}")
    assert r.homepage == repo["homepage"] and r.get_release(sample.v1).tag_name == sample.v1
    assert r.default_branch == git(sample.root / "dandi" / sample.id, "symbolic-ref", "--short", "HEAD")


def test_a_rerun_with_nothing_new_calls_nothing_and_a_new_title_is_one_edit(
    sample: Sample, github: GitHubStandIn, published: dict
) -> None:
    github.reset_calls()
    again = publish(sample, github)
    assert sum(github.calls.values()) == 0 and again["api_calls"] == 0
    assert requests.get(f"{github.url}/_calls", timeout=10).json() == {}  # the stand-in's count, over HTTP too
    assert all(p["repo"]["skipped"] for p in again["published"])

    sample.archive.set_metadata(sample.id, {"name": "GitHub sample, renamed"})  # type: ignore[attr-defined]
    sample.sync()
    github.reset_calls()
    res = publish(sample, github)
    assert github.writes() == 1 and github.calls["PATCH /repos/{owner}/{repo}"] == 1
    assert github.repos[(ORG, sample.id)]["description"].endswith("GitHub sample, renamed")
    assert res["published"][0]["repo"]["edited"] == ["description"]
    ds = sample.root / "dandi" / sample.id
    # the new draft state was pushed too: GitHub's branch is the mirror's HEAD under the .gitmodules commit
    assert git(github.bare(ORG, sample.id), "rev-parse", "HEAD^") == git(ds, "rev-parse", "HEAD")


def test_a_stranger_clones_the_repository_and_gets_every_file_zarr_included(
    sample: Sample, github: GitHubStandIn, published: dict, tmp_path: Path
) -> None:
    url = github.repos[(ORG, sample.id)]["clone_url"]
    clone = tmp_path / "stranger"
    sh(tmp_path, "datalad", "clone", url, str(clone))
    assert f"{github.url}/{ZORG}/" in (clone / ".gitmodules").read_text()  # the Zarr's own repository
    sh(clone, "git", "config", "annex.security.allowed-ip-addresses", "all")  # loopback archive, this clone only
    sh(clone, "datalad", "get", "-n", ZARR)
    sh(clone / ZARR, "git", "config", "annex.security.allowed-ip-addresses", "all")
    sh(clone, "datalad", "get", "-r", ".")
    got = without_metadata(data_files(clone))
    assert got == sample.files["draft"]
    # the mirror's own commits and tags are what GitHub holds (the tip adds only the .gitmodules)
    ds = sample.root / "dandi" / sample.id
    assert git(clone, "rev-parse", "HEAD^") == git(ds, "rev-parse", "HEAD")
    assert git(clone, "rev-parse", sample.v1) == git(ds, "rev-parse", sample.v1)
    assert git(ds, "config", "remote.published.url") == url


def test_the_token_is_nowhere_but_in_the_request(
    sample: Sample, github: GitHubStandIn, published: dict, tmp_path: Path
) -> None:
    clone = tmp_path / "c"
    sh(tmp_path, "git", "clone", "-q", github.repos[(ORG, sample.id)]["clone_url"], str(clone))
    secret = github.token.encode()
    places = [sample.root, clone, github.root]
    for place in places:
        for p in place.rglob("*"):
            if p.is_file() and not p.is_symlink():
                assert secret not in p.read_bytes(), p
    for ref in ("--all",):
        assert github.token not in git(sample.root / "dandi" / sample.id, "log", ref, "-p", "--format=%B")
    assert github.token not in json.dumps(published)
    # a run that logs everything (debug) and pushes says it nowhere either
    sample.archive.put_asset(sample.id, "sub-09/new.nwb", b"more" * 100)  # type: ignore[attr-defined]
    sample.sync()
    args = ("publish", sample.source, "--to", f"github:{ORG}", "--zarr-org", ZORG, "--github-api", github.api_url)
    code, out, err = sample.run(*args, "-l", "debug")
    assert code == 0 and "pushed" in out, err
    assert github.token not in out + err
    assert b64encode(f"x-access-token:{github.token}".encode()).decode() not in out + err


def test_a_cut_off_run_is_pushed_into_the_repository_it_made(
    dandi_archive,  # noqa: ANN001
    github: GitHubStandIn,
    tmp_path: Path,
) -> None:
    s = build_sample(dandi_archive, tmp_path / "mirror", name="Cut off")
    ds = s.root / "dandi" / s.id
    github.refuse_pushes = 1  # the run made the repository, then its push failed: GitHub has an empty repository
    args = ("publish", s.source, "--to", f"github:{ORG}", "--github-api", github.api_url)
    code, _, err = s.run(*args)
    assert code == 1 and "git push" in err and (ORG, s.id) in github.repos
    assert not (github.bare(ORG, s.id) / "refs" / "heads" / "master").exists()
    github.reset_calls()
    res = publish(s, github)
    assert github.calls["POST /orgs/{org}/repos"] == 0  # never made twice
    assert git(github.bare(ORG, s.id), "rev-parse", "refs/heads/master") == git(ds, "rev-parse", "HEAD")
    assert git(github.bare(ORG, s.id), "rev-parse", "refs/heads/git-annex") == git(ds, "rev-parse", "git-annex")
    assert res["published"][0]["repo"]["pushed"] and len(github.releases[(ORG, s.id)]) == 2

    # a repository made by someone else (PyGithub, a second client) is taken as it is, not made again
    other = build_sample(dandi_archive, tmp_path / "mirror2", name="Made beforehand")
    from github import Auth, Github

    Github(base_url=github.api_url, auth=Auth.Token(github.token)).get_organization(ORG).create_repo(other.id)
    github.reset_calls()
    publish(other, github)
    assert github.calls["POST /orgs/{org}/repos"] == 0 and github.calls["PATCH /repos/{owner}/{repo}"] == 1


def test_a_publish_killed_between_create_and_push_is_finished_by_the_next(
    dandi_archive,  # noqa: ANN001
    github: GitHubStandIn,
    tmp_path: Path,
) -> None:
    import signal
    import sys
    import threading

    from helpers.service import wait_for

    s = build_sample(dandi_archive, tmp_path / "mirror", name="Killed")
    ds = s.root / "dandi" / s.id
    github.hold_pushes, github.pushes_held = threading.Event(), 0
    cmd = [sys.executable, "-m", "neuromirror", "--root", str(s.root), "publish", s.source]
    proc = subprocess.Popen([*cmd, "--to", f"github:{ORG}", "--github-api", github.api_url])
    try:
        wait_for(lambda: github.pushes_held, 60, "the publisher's push")
        assert (ORG, s.id) in github.repos  # made, and nothing in it yet
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
        github.hold_pushes.set()
        github.hold_pushes = None
    assert not (github.bare(ORG, s.id) / "refs" / "heads" / "master").exists()
    github.reset_calls()
    publish(s, github)
    assert github.calls["POST /orgs/{org}/repos"] == 0
    assert git(github.bare(ORG, s.id), "rev-parse", "refs/heads/master") == git(ds, "rev-parse", "HEAD")
    assert len(github.releases[(ORG, s.id)]) == 2


def test_an_embargoed_dandiset_is_private_until_released_with_its_zarr(
    archive,  # noqa: ANN001
    github: GitHubStandIn,
    tmp_path: Path,
) -> None:
    from helpers.publish_ria import T0, _sync
    from helpers.retrieve import Runner

    run = Runner(tmp_path / "mirror")
    org = "lab-embargo"  # an archive of its own (ids from 000001 again): an organisation of its own
    e = archive.create_dandiset(name="Under embargo", embargoed=True, created=T0)
    archive.put_asset(e, "secret.nwb", b"embargoed science" * 200, when=T0 + timedelta(minutes=1))
    chunks = {".zgroup": b'{"zarr_format": 2}', "0/0": b"chunk" * 40}
    archive.add_zarr_asset(e, "img.zarr", chunks, when=T0 + timedelta(minutes=2))
    _sync(run, archive, e, key=True)
    args = ("publish", f"dandi:{e}", "--to", f"github:{org}", "--zarr-org", ZORG, "--github-api", github.api_url)
    res = run.json(*args)
    (zarr,) = res["published"][0]["zarrs"]
    assert github.repos[(org, e)]["private"] and zarr["private"]
    assert "embargoed" in res["published"][0]["private_why"]
    gitmodules = git(github.bare(org, e), "show", "HEAD:.gitmodules")
    assert zarr["ssh_url"] in gitmodules  # a private Zarr is named by SSH (the clone's own keys)
    # a stranger without the token sees nothing
    anon = subprocess.run(["git", "ls-remote", github.repos[(org, e)]["clone_url"]], capture_output=True)
    assert anon.returncode != 0

    archive.set_embargoed(e, False)
    _sync(run, archive, e, key=True)
    github.reset_calls()
    res = run.json(*args)
    assert github.calls["PATCH /repos/{owner}/{repo}"] == 2  # made public: the Zarr's and the dandiset's
    assert not github.repos[(org, e)]["private"] and not res["published"][0]["zarrs"][0]["private"]
    gitmodules = git(github.bare(org, e), "show", "HEAD:.gitmodules")
    assert zarr["url"] in gitmodules and zarr["ssh_url"] not in gitmodules  # HTTPS now
    clone = tmp_path / "stranger"
    sh(tmp_path, "datalad", "clone", github.repos[(org, e)]["clone_url"], str(clone))
    sh(clone, "git", "config", "annex.security.allowed-ip-addresses", "all")
    sh(clone, "datalad", "get", "-n", "img.zarr")
    sh(clone / "img.zarr", "git", "config", "annex.security.allowed-ip-addresses", "all")
    sh(clone, "datalad", "get", "-r", ".")
    assert (clone / "secret.nwb").read_bytes() == b"embargoed science" * 200
    assert (clone / "img.zarr" / "0" / "0").read_bytes() == b"chunk" * 40


def test_a_dandiset_deleted_upstream_is_made_private_never_deleted(
    dandi_archive,  # noqa: ANN001
    github: GitHubStandIn,
    tmp_path: Path,
) -> None:
    s = build_sample(dandi_archive, tmp_path / "mirror", name="Soon gone")
    publish(s, github)
    assert not github.repos[(ORG, s.id)]["private"]
    dandi_archive.delete_dandiset(s.id)
    code, _, err = s.run("sync", s.source, "--dandi-api", dandi_archive.api_url)
    assert code != 0
    github.reset_calls()
    res = publish(s, github)
    assert github.repos[(ORG, s.id)]["private"] and res["published"][0]["private_why"] == "gone from the archive"
    assert github.calls["PATCH /repos/{owner}/{repo}"] == 1 and github.calls.get("DELETE /repos/{owner}/{repo}", 0) == 0
    assert github.bare(ORG, s.id).is_dir()


def test_a_branch_someone_else_pushed_to_is_not_overwritten_unless_forced(
    dandi_archive,  # noqa: ANN001
    github: GitHubStandIn,
    tmp_path: Path,
) -> None:
    s = build_sample(dandi_archive, tmp_path / "mirror", name="Foreign push", zarr=True)
    publish(s, github)
    bare = github.bare(ORG, s.id)
    foreign = git(bare, "commit-tree", "HEAD^{tree}", "-p", "HEAD", "-m", "someone else's")
    git(bare, "update-ref", "refs/heads/master", foreign)
    s.archive.put_asset(s.id, "sub-07/late.nwb", b"late" * 50)  # type: ignore[attr-defined]
    s.sync()
    args = ("publish", s.source, "--to", f"github:{ORG}", "--zarr-org", ZORG, "--github-api", github.api_url)
    code, _, err = s.run(*args)
    assert code == 1 and "which the mirror lacks" in err and git(bare, "rev-parse", "master") == foreign
    publish(s, github, "--force")
    assert git(bare, "rev-parse", "master^") == git(s.root / "dandi" / s.id, "rev-parse", "HEAD")


def test_rate_limits_are_waited_out(sample: Sample, github: GitHubStandIn, published: dict) -> None:
    github.plant(429, retry_after=0.2)
    github.plant(403, retry_after=None)  # x-ratelimit-remaining: 0, reset a second on
    before = github.throttled
    res = publish(sample, github, "--github-metadata")
    assert github.throttled - before == 2
    assert res["rate_limit_waited_s"] >= 0.2
    assert res["published"][0]["repo"]["edited"] == []


def test_bad_targets_are_one_line_errors(sample: Sample, github: GitHubStandIn, monkeypatch) -> None:  # noqa: ANN001
    code, _, err = sample.run("publish", sample.source, "--to", "github:", "--github-api", github.api_url)
    assert code != 0 and "expected github:ORG" in err and len(err.strip().splitlines()) == 1
    code, _, err = sample.run("publish", sample.source, "--to", "/tmp/x", "--zarr-org", "z")
    assert code != 0 and "--to '/tmp/x' is not github:ORG" in err
    code, _, err = sample.run("publish", sample.source, "--to", f"github:{ORG}", "--with-root")
    assert code != 0 and "--with-root: the root superdataset" in err
    monkeypatch.delenv("GITHUB_TOKEN")
    monkeypatch.setenv("HOME", str(sample.root.parent / "nohome"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    code, _, err = sample.run("publish", sample.source, "--to", f"github:{ORG}", "--github-api", github.api_url)
    assert code != 0 and "needs a token" in err
    # git's hub.oauthtoken (hub's and gh's place for it) is read when GITHUB_TOKEN is not set
    home = sample.root.parent / "nohome"
    home.mkdir(exist_ok=True)
    subprocess.run(["git", "config", "--file", str(home / ".gitconfig"), "hub.oauthtoken", github.token], check=True)
    res = publish(sample, github, "--github-metadata")
    assert res["published"][0]["repo"]["full_name"] == f"{ORG}/{sample.id}"


def test_the_service_publishes_to_github_after_each_sync(
    dandi_archive,  # noqa: ANN001
    github: GitHubStandIn,
    tmp_path: Path,
) -> None:
    from helpers.service import serve, wait_for
    from neuromirror.demo import deterministic_bytes

    a = dandi_archive.create_dandiset(name="Served to GitHub")
    dandi_archive.put_asset(a, "sub-01/one.nwb", deterministic_bytes(a, 5_000))
    root, cfg = tmp_path / "mirror", tmp_path / "m.yaml"
    cfg.write_text(
        "defaults:\n"
        "  schedule: {interval: 2s}\n"
        f'  options: {{dandi_api: "{dandi_archive.api_url}"}}\n'
        f'  publish: {{to: "github:svc-lab", github_api: "{github.api_url}"}}\n'
        f'sources:\n  - spec: "dandi:{a}"\n'
    )
    bare = github.bare("svc-lab", a)

    def pushed() -> bool:
        ds = root / "dandi" / a
        head = subprocess.run(["git", "-C", str(ds), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        there = subprocess.run(["git", "-C", str(bare), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        return bool(head.strip()) and head == there

    with serve(root, cfg, env={"GITHUB_TOKEN": github.token}) as svc:
        wait_for(pushed, 120, "the dandiset published to GitHub", svc)
        dandi_archive.put_asset(a, "sub-02/two.nwb", b"two" * 100)
        wait_for(lambda: (root / "dandi" / a / "sub-02/two.nwb").is_symlink() and pushed(), 120, "the change", svc)
    assert github.calls["POST /orgs/{org}/repos"] >= 1 and github.repos[("svc-lab", a)]["homepage"].endswith(a)
    assert github.token not in svc.stderr


@pytest.mark.parametrize(
    "publish, error",
    [
        ("{to: 'github:'}", "publish.to: expected a GitHub organisation's name"),
        ("{to: 'github:lab', zarr_org: 'a b'}", "publish.zarr_org: expected a GitHub organisation's name"),
        ("{to: 'github:lab', github_api: 'https://u:p@host/api/v3'}", "publish.github_api: expected GitHub's API"),
    ],
)
def test_a_bad_github_publish_target_is_refused_at_load(tmp_path: Path, publish: str, error: str) -> None:
    from neuromirror.config.load import load_config
    from neuromirror.config.reader import ConfigError

    f = tmp_path / "m.yaml"
    f.write_text(f"defaults: {{schedule: 1h}}\nsources:\n  - {{spec: 'dandi:000001', publish: {publish}}}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(f)
    assert error in str(exc.value), str(exc.value)
    f.write_text("defaults: {schedule: 1h}\nsources:\n  - {spec: 'dandi:000001', publish: 'github:lab'}\n")
    assert load_config(f).sources[0].publish == {"to": "github:lab"}


def test_every_page_of_releases_is_read(github: GitHubStandIn) -> None:
    """A dandiset with more published versions than one page of GitHub's answer (100) gets no release twice."""
    from github import Auth, Github

    from neuromirror.publish.github.client import GitHub

    gh = Github(
        base_url=github.api_url, auth=Auth.Token(github.token), seconds_between_writes=0, seconds_between_requests=0
    )
    repo = gh.get_organization(ORG).create_repo("many")
    tags = {f"0.2401{i:02d}.{i:04d}" for i in range(130)}
    for tag in sorted(tags):
        repo.create_git_release(tag, tag, "")
    client = GitHub(github.token, github.api_url)
    assert client.release_tags(ORG, "many") == tags and client.calls == 2
    client.release(ORG, "many", sorted(tags)[0], title="again", body="")  # there already: left as it is
    assert len(github.releases[(ORG, "many")]) == 130
