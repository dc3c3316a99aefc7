"""``git-annex-remote-neuromirror-dandi``: retrieval of embargoed DANDI content with the user's key.

git-annex runs this program (external special remote protocol, via
``annexremote``) in any clone where the mirror initialised the remote with
``autoenable=true``.  It claims URLs ``neuromirror+dandi:<API URL>``, GETs the
API URL with ``Authorization: token $DANDI_API_KEY`` read from the environment
of the retrieving process, follows the archive's redirect to a presigned S3 URL
without the key, and lets git-annex verify the bytes against the key.  Nothing
about the key is stored; without it, retrieval fails with a message saying to
set ``DANDI_API_KEY``.

The key is sent only to the API hosts of known DANDI instances (dandi-cli's
``known_instances``), to the host of ``NEUROMIRROR_DANDI_API`` and to hosts
listed in ``NEUROMIRROR_DANDI_KEY_HOSTS`` (comma separated ``host[:port]``), so
that a dataset from elsewhere cannot make the remote hand the key to another
server.
"""

from __future__ import annotations

import os
from typing import Callable, Optional
from urllib.parse import urlsplit

from neuromirror.sources.dandi import SPECIAL_PREFIX as PREFIX

KEY_ENV = "DANDI_API_KEY"
CHUNK = 1 << 20


def key_hosts() -> set[str]:
    hosts: set[str] = set()
    try:
        from dandi.consts import known_instances

        for inst in known_instances.values():
            if inst.api and urlsplit(inst.api).hostname not in ("localhost", "127.0.0.1"):
                hosts.add(urlsplit(inst.api).netloc.lower())
    except Exception:  # pragma: no cover - dandi is a dependency
        hosts.add("api.dandiarchive.org")
    api = os.environ.get("NEUROMIRROR_DANDI_API")
    if api:
        hosts.add(urlsplit(api).netloc.lower())
    for h in (os.environ.get("NEUROMIRROR_DANDI_KEY_HOSTS") or "").split(","):
        if h.strip():
            hosts.add(h.strip().lower())
    return hosts


def api_url_of(url: str) -> str:
    if not url.startswith(PREFIX):
        raise ValueError(f"not a {PREFIX} URL: {url}")
    real = url[len(PREFIX) :]
    if urlsplit(real).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL after {PREFIX}: {url}")
    return real


def key_for(url: str) -> Optional[str]:
    """The key if it may go to ``url``'s host; raise if it is set but the host is not trusted."""
    key = os.environ.get(KEY_ENV) or None
    if key is None:
        return None
    host = urlsplit(url).netloc.lower()
    if host not in key_hosts():
        raise PermissionError(
            f"refusing to send {KEY_ENV} to {host}: not a known DANDI API host "
            "(add it to NEUROMIRROR_DANDI_KEY_HOSTS if you trust it)"
        )
    return key


def fetch(url: str, dest: str, progress=None) -> None:  # noqa: ANN001
    """Download the content behind a ``neuromirror+dandi:`` URL to ``dest``."""
    from neuromirror.sources.dandi.embargo import open_with_key

    real = api_url_of(url)
    r = open_with_key(real, key=key_for(real) or "", stream=True, timeout=120)
    try:
        if not r.ok:
            raise RuntimeError(f"HTTP {r.status_code} from {urlsplit(r.url).netloc or real}")
        done = 0
        with open(dest, "wb") as fh:
            for chunk in r.iter_content(CHUNK):
                fh.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done)
    finally:
        r.close()


def present(url: str) -> bool:
    from neuromirror.sources.dandi.embargo import open_with_key

    real = api_url_of(url)
    r = open_with_key(real, key=key_for(real) or "", stream=True, timeout=60)
    try:
        return r.ok
    finally:
        r.close()


def _retrieve_first(urls: list[str], dest: str, progress: Callable[[int], None]) -> list[str]:
    """Download to ``dest`` from the first of ``urls`` that serves it: nothing when one did, else
    why each failed (the next URL may work, so every failure is said)."""
    errors: list[str] = []
    for url in urls:
        try:
            fetch(url, dest, progress=progress)
            return []
        except Exception as exc:
            errors.append(str(exc) or type(exc).__name__)
    return errors


def _present_at_any(urls: list[str]) -> tuple[bool, Optional[str]]:
    """Whether one of ``urls`` has the content (asked in order, stopping at the first that has it),
    and when none has, the error of the last that could not be asked (None: each said no)."""
    last: Optional[str] = None
    for url in urls:
        try:
            if present(url):
                return True, None
        except Exception as exc:
            last = str(exc)
    return False, last


def _remote_class():  # noqa: ANN202 - annexremote is imported only when git-annex runs us
    from annexremote import RemoteError, SpecialRemote

    class DandiKeyRemote(SpecialRemote):
        """Read-only: content stays at the DANDI archive."""

        def initremote(self) -> None:
            pass

        def prepare(self) -> None:
            pass

        def getcost(self) -> int:
            return 250  # after the web remote (200): public content is fetched without the key

        def claimurl(self, url: str) -> bool:
            return url.startswith(PREFIX)

        def checkurl(self, url: str) -> bool:
            return url.startswith(PREFIX)

        def _urls(self, key: str) -> list[str]:
            return [u for u in self.annex.geturls(key, PREFIX) if u.startswith(PREFIX)]

        def transfer_retrieve(self, key: str, filename: str) -> None:
            urls = self._urls(key)
            if not urls:
                raise RemoteError(f"no {PREFIX} URL recorded for {key}")
            errors = _retrieve_first(urls, filename, lambda n: self.annex.progress(n))
            if errors:
                raise RemoteError("; ".join(dict.fromkeys(errors)))

        def checkpresent(self, key: str) -> bool:
            found, last = _present_at_any(self._urls(key))
            if found:
                return True
            if last:
                raise RemoteError(last)
            return False

        def transfer_store(self, key: str, filename: str) -> None:
            raise RemoteError("the DANDI archive is read-only through neuromirror")

        def remove(self, key: str) -> None:
            raise RemoteError("the DANDI archive is read-only through neuromirror")

    return DandiKeyRemote


def main() -> None:
    from annexremote import Master

    from neuromirror.util.toolpath import ensure_tools_on_path

    ensure_tools_on_path()  # git-annex started us by name; what we start finds the same install

    master = Master()
    master.LinkRemote(_remote_class()(master))
    master.Listen()


if __name__ == "__main__":  # pragma: no cover
    main()
