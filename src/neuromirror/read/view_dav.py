"""The WebDAV side of the HTTP view: a read-only WsgiDAV provider over :class:`~.view_tree.Tree`.

WsgiDAV speaks the protocol (PROPFIND's 207 Multi-Status with ``displayname``, ``resourcetype``,
``getcontentlength``, ``getetag``, ``getlastmodified``; OPTIONS; GET and HEAD with ``Range`` answered 206); the
provider only says what is there, and when: the pin's date (a published version's date, a draft's or
commit's commit date), so that rclone, mounts and webdav4 show real dates instead of none.  One provider per share: ``/dav`` and the DANDI-shaped
``/dandisets``, both over the same tree.  A file's content is only ever asked for when the view
streams it itself (a file kept in git, or the lab store's copy of a file the archive lost: a file here, an
S3 object or a key of a packed store, one request to the store from the offset asked for): every other
GET of a file is a redirect answered before WsgiDAV (:mod:`.view`).
"""

from __future__ import annotations

import io
import re
from typing import Any, Optional

from wsgidav.dav_error import HTTP_FORBIDDEN, HTTP_NOT_FOUND, DAVError
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, DAVProvider
from wsgidav.error_printer import ErrorPrinter
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from neuromirror.annex.keys import key_hash
from neuromirror.read.store_reads import StoreCopy
from neuromirror.read.urls import PinnedFile
from neuromirror.read.view_tree import Entry, Node, Tree
from neuromirror.util import gitutil


def store_copy(f: PinnedFile) -> Optional[StoreCopy]:
    """The lab store's copy of ``f`` that the view streams itself (:attr:`.StoreCopy.streamed`: a file here,
    an S3 object, a key of a packed store), if it has one."""
    return f.copy if f.copy is not None and f.copy.streamed else None


class _Copy(io.RawIOBase):
    """A store's copy as WsgiDAV reads a file: it seeks to the range asked for, then reads on; the store is
    asked at the first read for the bytes from there (:meth:`.StoreCopy.open`)."""

    def __init__(self, copy: StoreCopy, end: Optional[int] = None) -> None:
        self.copy, self._at, self._end = copy, 0, end  # end: where the range asked for ends, if it said so
        self._body: Optional[io.RawIOBase] = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._body is None

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self._body is not None or whence != io.SEEK_SET:
            raise io.UnsupportedOperation("a store's copy seeks once, before it is read")
        self._at = offset
        return offset

    def readinto(self, b: Any) -> int:
        if self._body is None:
            end = self._end if self._end is not None and self._end > self._at else None
            self._body = self.copy.open(self._at, end)
        data = self._body.read(len(b)) or b""
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
        super().close()


def _range_end(environ: dict) -> Optional[int]:
    """Where the one range a ``GET`` asks for ends (``Range: bytes=FIRST-LAST``: LAST + 1); None: the file's end."""
    m = re.fullmatch(r"\s*bytes=(\d+)-(\d+)\s*", environ.get("HTTP_RANGE", ""))
    return None if m is None else int(m.group(2)) + 1


def if_match_by_md5(environ: dict, key: str) -> None:
    """A read conditional on the bytes' MD5 (``If-Match: "<md5>"``, an S3 ETag: Icechunk's guard of a chunk the
    archive served) made one on the key (this view's ETag) when the key names that MD5: the store's copy of a
    lost chunk answers it as the archive did, never 412; another MD5 still fails."""
    named = key_hash(key or "")
    asked = environ.get("HTTP_IF_MATCH", "").strip()
    if named is not None and named[0] == "md5" and asked == f'"{named[1]}"':
        environ["HTTP_IF_MATCH"] = f'"{key}"'


class _File(DAVNonCollection):
    def __init__(
        self, path: str, environ: dict, f: PinnedFile, data: Optional[bytes], modified: Optional[float] = None
    ) -> None:
        super().__init__(path, environ)
        self.file, self.data, self.modified = f, data, modified

    def get_last_modified(self) -> Optional[float]:
        return self.modified

    def get_content_length(self) -> Optional[int]:
        return len(self.data) if self.data is not None else self.file.size

    def get_etag(self) -> Optional[str]:
        return self.file.key or None  # the key names exactly these bytes

    def support_etag(self) -> bool:
        return bool(self.file.key)

    def support_ranges(self) -> bool:
        return True

    def get_content(self) -> Any:
        f = self.file
        if f.served_by == "git":
            if self.data is not None:
                return io.BytesIO(self.data)
            assert f.repo is not None and f.blob is not None  # a large file in git: read now
            return io.BytesIO(gitutil.run(f.repo, "cat-file", "blob", f.blob).stdout)
        copy = store_copy(f)
        if copy is None:
            raise DAVError(HTTP_NOT_FOUND)
        return _Copy(copy, _range_end(self.environ))  # a copy that does not read cuts the answer short: an error


class _Dir(DAVCollection):
    def __init__(
        self,
        path: str,
        environ: dict,
        tree: Tree,
        style: str,
        node: Optional[Node] = None,
        modified: Optional[float] = None,
    ) -> None:
        super().__init__(path, environ)
        self.tree, self.style, self._node = tree, style, node
        self.modified = modified if node is None else node.modified

    def get_last_modified(self) -> Optional[float]:
        return self.modified

    def _entries(self) -> list[Entry]:
        if self._node is None:
            self._node = self.tree.node(self.style, self.path.rstrip("/") + "/")
        return self._node.entries if self._node is not None else []

    def get_member_names(self) -> list[str]:
        return [e.name for e in self._entries()]

    def get_member(self, name: str) -> Optional[Any]:
        entry = next((e for e in self._entries() if e.name == name), None)
        return None if entry is None else self._member(entry)

    def get_member_list(self) -> list[Any]:
        return [self._member(e) for e in self._entries()]

    def _member(self, e: Entry) -> Any:
        path = self.path.rstrip("/") + "/" + e.name
        if e.file is None:
            return _Dir(path, self.environ, self.tree, self.style, modified=e.modified)  # entries: only if asked for
        return _File(path, self.environ, e.file, None, e.modified)

    def get_display_info(self) -> dict:
        return {"type": "Directory"}


class PinProvider(DAVProvider):
    """The tree of one share (``dav`` or ``dandisets``), read-only."""

    def __init__(self, tree: Tree, style: str) -> None:
        super().__init__()
        self.tree, self.style = tree, style

    def is_readonly(self) -> bool:
        return True

    def get_resource_inst(self, path: str, environ: dict) -> Optional[Any]:
        node = self.tree.node(self.style, path)
        if node is None:
            return None
        if node.is_dir:
            return _Dir(path, environ, self.tree, self.style, node)
        assert node.file is not None
        if_match_by_md5(environ, node.file.key)
        return _File(path, environ, node.file, node.data, node.modified)

    def custom_request_handler(self, environ: dict, start_response: Any, default_handler: Any) -> Any:
        if environ["REQUEST_METHOD"] not in ("GET", "HEAD", "OPTIONS", "PROPFIND"):
            raise DAVError(HTTP_FORBIDDEN)  # the view answers 405 before; never a write here
        return default_handler(environ, start_response)


def dav_app(tree: Tree, shares: dict[str, str]) -> WsgiDAVApp:
    """WsgiDAV serving ``tree`` under each share (``{"/dav": "dav", "/dandisets": "dandisets"}``).

    No authentication, locks, dead properties or directory browser: the view is read-only and
    public (on loopback unless told otherwise), and its listings for people are the view's own.
    """
    config = {
        "provider_mapping": {share: PinProvider(tree, style) for share, style in shares.items()},
        "middleware_stack": [ErrorPrinter, RequestResolver],
        "lock_storage": None,
        "property_manager": None,
        "verbose": 1,
        "logging": {"enable": False},
        "dir_browser": {"enable": False},
        "add_header_MS_Author_Via": False,
        "suppress_version_info": True,
    }
    return WsgiDAVApp(config)
