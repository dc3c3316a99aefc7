"""Source options in a definition: which names exist, and checking a file's against them.

The names are the ``neuromirror sync`` options the source modules add (asked of the
installed modules, so a new source's options are known without listing them here), plus
the few that belong to a sync rather than a source (``engine``, ``dandi_instance``).  A
file may spell them as dest names or flags (``dandi_api``, ``dandi-api``, ``--dandi-api``).
"""

from __future__ import annotations

import os
from typing import Any, Optional

from neuromirror.config.reader import Node, Reader, join_field, kind_of
from neuromirror.config.rules import Check, duration, flag, read_value, size, valid, whole

#: options that are not source options but still belong to a sync
#: (dandi_instance: a DANDI instance by name, as ``sync -i``; its API wins over dandi_api)
#: quiet, recheck_cycles, full_pass: a glob's quiet hour (neuromirror.service.quiet, docs/service.md);
#: min_free: the free space a sync, keep or publish needs to start (neuromirror.util.disk)
#: references: "nwb" makes a LINDI reference of each new NWB/HDF5 key (neuromirror.read.references.batch)
SYNC_OPTIONS: dict[str, Any] = {
    "engine": "fast-import",
    "dandi_instance": None,
    "quiet": None,
    "recheck_cycles": None,
    "full_pass": None,
    "min_free": None,
    "references": None,
}
ENGINES = ("fast-import", "batch")


_known_options_cache: Optional[tuple[dict[str, Any], bool]] = None
#: the options that take one value (a URL, a number, a size): a list given to one is refused, not passed on
#: (the others may take a list: a source splits ``channels: [a, b]`` as it splits ``--channels a,b``)
_one_valued: set[str] = set()
ONE_VALUE_METAVARS = ("URL", "N", "SIZE")


def known_options() -> tuple[dict[str, Any], bool]:
    """``(dest -> default, complete)`` for every ``neuromirror sync`` option a source module adds.

    ``complete`` is False when a source module could not be imported (then
    unknown option names are accepted with a warning rather than refused).
    """
    global _known_options_cache
    if _known_options_cache is not None:
        return _known_options_cache
    import argparse

    from neuromirror import archives, sources

    parser = argparse.ArgumentParser(add_help=False)
    complete = True
    for archive in archives.names():
        try:
            module = sources.options_module_for(archive)
        except ImportError:
            complete = False
            continue
        module.add_options(parser.add_argument_group(archive))
    defaults = {a.dest: a.default for a in parser._actions if a.dest != "help"}
    _one_valued.update(a.dest for a in parser._actions if a.metavar in ONE_VALUE_METAVARS or a.type in (int, float))
    defaults.update(SYNC_OPTIONS)
    defaults["engine"] = os.environ.get("NEUROMIRROR_ENGINE", SYNC_OPTIONS["engine"])
    _known_options_cache = (defaults, complete)
    return _known_options_cache


def option_dest(name: str) -> str:
    """``--dandi-api``, ``dandi-api`` and ``dandi_api`` all name the option ``dandi_api``."""
    return name.lstrip("-").replace("-", "_")


def read_options(r: Reader, node: Node, path: str, entries: Optional[dict[str, Node]] = None) -> dict[str, Any]:
    """Validate option names (dest or flag spelling) and values; return dest -> value."""
    known, complete = known_options()
    if entries is None:
        m = r.mapping(node, path, (), extra_ok=True)
        if m is None:
            return {}
    else:
        m = entries
    out: dict[str, Any] = {}
    for key, vnode in m.items():
        dest = option_dest(key)
        if dest not in known and not _unknown_passed_on(r, node, path, key, sorted(known), complete):
            continue
        value = _checked_value(r, vnode, join_field(path, key), key, dest)
        if value is not _REFUSED:
            out[dest] = value
    return out


#: what :func:`_checked_value` returns for a value it reported as an error
_REFUSED = object()


def _unknown_passed_on(r: Reader, node: Node, path: str, key: str, known: list[str], complete: bool) -> bool:
    """An option no source module knows: an error when all were asked, else passed on with a warning."""
    if complete:
        r.unknown_key(node, path, key, known)
        return False
    r.warn(
        node.key_lines.get(key, node.line),
        path,
        f"option '{key}' is not known to the installed source modules; passed on as is",
    )
    return True


def _checked_value(r: Reader, vnode: Node, field: str, key: str, dest: str) -> Any:
    """The option's value (a list's items unwrapped), or :data:`_REFUSED` once its error is reported."""
    value = vnode.value
    if isinstance(value, list) and dest in _one_valued:
        r.error(vnode.line, field, f"expected one value, got a list ({key} takes one)")
        return _REFUSED
    if isinstance(value, list):
        bad = [x.value for x in value if isinstance(x.value, (dict, list))]
        value = [x.value for x in value]
    else:
        bad = [value] if isinstance(value, dict) else []
    if bad:
        r.error(vnode.line, field, f"expected a value or a list of values, got {kind_of(bad[0])}")
        return _REFUSED
    check = OPTION_RULES.get(dest)
    if check is not None and not valid(read_value(r, Node(value, vnode.line), field, check)):
        return _REFUSED
    return value


def _engine(value: Any) -> Any:
    if value not in ENGINES:
        raise ValueError(f"unknown engine {value!r} (known: {', '.join(ENGINES)})")
    return value


def _references(value: Any) -> Any:
    if value != "nwb":
        raise ValueError(f"references: {value!r} is not a kind of reference made (known: nwb, LINDI references)")
    return value


def _dandi_instance(value: Any) -> Any:
    from neuromirror.sources.dandi import instance_api

    instance_api(str(value))  # IdentifierError is a ValueError: its message is the error
    return value


#: the checks of option values (the values themselves are passed on as given); other options are the sources'
OPTION_RULES: dict[str, Check] = {
    "engine": _engine,
    "dandi_instance": _dandi_instance,
    "quiet": flag,
    "recheck_cycles": whole(0, None, "a whole number of cycles (0: no rolling re-check)"),
    "full_pass": duration,
    "min_free": size(positive=False),
    "references": _references,
}
