"""Git's smart HTTP for the GitHub stand-in: each request handed to ``git http-backend`` (CGI), as a real git host does.

Why ``git http-backend`` and not a file path: ``publish --to github:ORG`` pushes over HTTPS with the token in an
``Authorization`` header (never in a URL), and a stranger's ``datalad clone`` of the repository's ``clone_url``
reads it over HTTP; both go through git's own server, so what works here works against github.com.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Optional

#: the CGI variables git http-backend reads (``GIT_PROJECT_ROOT`` is the directory of ``OWNER/REPO.git``)
_CGI = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH")


def read_body(rfile, headers) -> bytes:  # noqa: ANN001
    """The request body, with or without ``Transfer-Encoding: chunked`` (git sends large pushes chunked)."""
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        out = bytearray()
        while True:
            size = int(rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += rfile.read(size)
            rfile.readline()
    n = int(headers.get("Content-Length") or 0)
    return rfile.read(n) if n else b""


def backend(
    project_root: Path,
    method: str,
    path: str,
    query: str,
    content_type: Optional[str],
    content_encoding: Optional[str],
    body: bytes,
    user: Optional[str],
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Run ``git http-backend`` for one request: (status, headers, body) of its CGI answer.

    ``user``: who authenticated (receive-pack, a push, is served only then, as on GitHub)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    values = dict(zip(_CGI, (method, path, query, content_type or "", str(len(body)))))
    env.update(values, GIT_PROJECT_ROOT=str(project_root), GIT_HTTP_EXPORT_ALL="1")
    if content_encoding:
        env["HTTP_CONTENT_ENCODING"] = content_encoding
    if user:
        env["REMOTE_USER"] = user
    proc = subprocess.run(["git", "http-backend"], input=body, capture_output=True, env=env)
    head, _, payload = proc.stdout.partition(b"\r\n\r\n")
    if not _:
        head, _, payload = proc.stdout.partition(b"\n\n")
    status = 200
    headers: list[tuple[str, str]] = []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        elif name:
            headers.append((name.strip(), value.strip()))
    if proc.returncode != 0 and not proc.stdout:
        return 500, [("Content-Type", "text/plain")], proc.stderr
    return status, headers, payload
