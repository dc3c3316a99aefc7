"""The GitHub stand-in's REST routes (docs.github.com/rest: ``orgs``, ``repos``, ``releases``), as a mixin of
:class:`~.server.GitHubStandIn`: each takes the route's names, the request's JSON (or query) and whether the token
came, and returns (status, JSON).  A repository is also a bare repository made at its create."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

#: an owner's or a repository's name in a route
NAME = r"([A-Za-z0-9_.-]+)"


class RestRoutes:
    """The state the routes read and change: repositories and releases by (owner, name), ids handed out."""

    root: Path
    host: str
    repos: dict[tuple[str, str], dict[str, Any]]
    releases: dict[tuple[str, str], list[dict[str, Any]]]
    _ids: int

    @property
    def url(self) -> str:
        raise NotImplementedError

    def bare(self, owner: str, name: str) -> Path:
        return self.root / owner / f"{name}.git"

    def _repo_json(self, key: tuple[str, str]) -> dict[str, Any]:
        r = dict(self.repos[key])
        r["default_branch"] = self._default_branch(key) or r["default_branch"]
        return r

    def _default_branch(self, key: tuple[str, str]) -> Optional[str]:
        head = self.bare(*key) / "HEAD"
        ref = head.read_text().strip() if head.exists() else ""
        return ref[len("ref: refs/heads/") :] if ref.startswith("ref: refs/heads/") else None

    def _org(self, org: str, body: Any, authed: bool) -> tuple[int, Any]:
        return 200, {"login": org, "id": 1, "type": "Organization", "url": f"{self.url}/orgs/{org}"}

    def _create(self, org: str, body: Any, authed: bool) -> tuple[int, Any]:
        if not authed:
            return 401, {"message": "Requires authentication"}
        name = str(body.get("name") or "")
        key = (org, name)
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            return 422, {"message": "Repository creation failed.", "errors": [{"field": "name", "code": "invalid"}]}
        if key in self.repos:
            return 422, {"message": "Repository creation failed.", "errors": [{"message": "name already exists"}]}
        private = bool(body.get("private", False))
        self._ids += 1
        self.repos[key] = {
            "id": self._ids,
            "node_id": f"R_{self._ids}",
            "name": name,
            "full_name": f"{org}/{name}",
            "owner": {"login": org, "id": 1, "type": "Organization"},
            "private": private,
            "visibility": "private" if private else "public",
            "description": body.get("description"),
            "homepage": body.get("homepage"),
            "html_url": f"{self.url}/{org}/{name}",
            "url": f"{self.url}/repos/{org}/{name}",
            "clone_url": f"{self.url}/{org}/{name}.git",
            "ssh_url": f"git@{self.host}:{org}/{name}.git",
            "default_branch": "main",
            "created_at": _now(),
        }
        self.releases[key] = []
        bare = self.bare(org, name)
        bare.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=main", str(bare)], check=True)
        return 201, self._repo_json(key)

    def _visible(self, key: tuple[str, str], authed: bool) -> bool:
        return key in self.repos and (authed or not self.repos[key]["private"])

    def _get(self, owner: str, repo: str, body: Any, authed: bool) -> tuple[int, Any]:
        key = (owner, repo)
        return (200, self._repo_json(key)) if self._visible(key, authed) else (404, {"message": "Not Found"})

    def _edit(self, owner: str, repo: str, body: Any, authed: bool) -> tuple[int, Any]:
        key = (owner, repo)
        if not authed or key not in self.repos:
            return 404, {"message": "Not Found"}
        r = self.repos[key]
        for field in ("description", "homepage", "default_branch"):
            if field in body:
                r[field] = body[field]
        if "private" in body or "visibility" in body:
            private = bool(body["private"]) if "private" in body else body["visibility"] == "private"
            r["private"], r["visibility"] = private, "private" if private else "public"
        return 200, self._repo_json(key)

    def _rels(self, owner: str, repo: str, body: Any, authed: bool) -> tuple[int, Any]:
        key = (owner, repo)
        if not self._visible(key, authed):
            return 404, {"message": "Not Found"}
        per_page, page = min(int(body.get("per_page") or 30), 100), int(body.get("page") or 1)
        newest_first = list(reversed(self.releases[key]))
        return 200, newest_first[(page - 1) * per_page : page * per_page]

    def _rel(self, owner: str, repo: str, body: Any, authed: bool) -> tuple[int, Any]:
        key = (owner, repo)
        if not authed or key not in self.repos:
            return 404, {"message": "Not Found"}
        tag = str(body.get("tag_name") or "")
        if any(r["tag_name"] == tag for r in self.releases[key]):
            return 422, {"message": "Validation Failed", "errors": [{"code": "already_exists", "field": "tag_name"}]}
        self._ids += 1
        rel: dict[str, Any] = {
            "id": self._ids,
            "tag_name": tag,
            "name": body.get("name") or tag,
            "body": body.get("body") or "",
            "draft": False,
            "prerelease": False,
            "target_commitish": body.get("target_commitish") or "main",
            "html_url": f"{self.url}/{owner}/{repo}/releases/tag/{tag}",
            "url": f"{self.url}/repos/{owner}/{repo}/releases/{self._ids}",
            "created_at": _now(),
            "published_at": _now(),
            "assets": [],
        }
        self.releases[key].append(rel)
        return 201, rel

    def _rel_by_tag(self, owner: str, repo: str, tag: str, body: Any, authed: bool) -> tuple[int, Any]:
        key = (owner, repo)
        found = [r for r in self.releases.get(key, []) if r["tag_name"] == tag] if self._visible(key, authed) else []
        return (200, found[0]) if found else (404, {"message": "Not Found"})


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
