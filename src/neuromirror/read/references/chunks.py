"""A LINDI reference opened as an h5py-compatible file whose chunk reads go where the mirror reads bytes.

lindi reads a chunk reference ``[url, offset, length]`` with ``requests`` against the URL as written,
retrying a 404 eight times (25 s) before it raises: a pin whose archive lost the bytes would hang, then
fail, though a store of the lab's holds them.  Here every chunk is read through the function the caller
gives (``neuromirror://``'s :func:`~neuromirror.read.loss.read_range`: the pinned URL, the store behind
it, the loss remembered for every reader); what the reference holds inline is read from it, as lindi does.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from neuromirror.read.references.lindi_env import lindi

#: bytes ``[start:end]`` of the one file a reference describes
Fetch = Callable[[Optional[int], Optional[int]], bytes]


def expand_templates(rfs: dict[str, Any]) -> dict[str, Any]:
    """``rfs`` with lindi's URL templates (``{{u1}}``) written out: a chunk's URL as it is."""
    templates = rfs.get("templates") or {}
    if not templates:
        return rfs
    refs = {}
    for k, v in rfs["refs"].items():
        if isinstance(v, list) and "{{" in v[0]:
            url = v[0]
            for name, value in templates.items():
                url = url.replace("{{" + name + "}}", value)
            v = [url, v[1], v[2]]
        refs[k] = v
    return {**{k: v for k, v in rfs.items() if k != "templates"}, "refs": refs}


def chunk_urls(rfs: dict[str, Any]) -> set[str]:
    """Every URL the reference's chunks name (a reference made here: one, the key's pinned URL)."""
    return {v[0] for v in expand_templates(rfs)["refs"].values() if isinstance(v, list)}


def open_reference(rfs: dict[str, Any], fetch: Fetch, url: Optional[str]) -> Any:
    """A read-only ``lindi.LindiH5pyFile`` of ``rfs`` whose chunks of ``url`` (the file's pinned URL; None: every
    chunk, as a reference made here names one file's bytes only) are read by ``fetch``; a chunk of another URL
    is read as lindi reads it."""
    mod = lindi()
    from lindi.LindiH5pyFile.LindiReferenceFileSystemStore import LindiReferenceFileSystemStore

    class PinnedStore(LindiReferenceFileSystemStore):
        def _get_helper(self, key: str) -> Any:
            x = self.rfs["refs"].get(key)
            if isinstance(x, list) and (url is None or x[0] == url):
                return fetch(x[1], x[1] + x[2])
            return super()._get_helper(key)

    store = PinnedStore(expand_templates(rfs), mode="r")
    return mod.LindiH5pyFile.from_zarr_store(store, mode="r")
