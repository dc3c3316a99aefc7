"""``contact:`` and ``network:``: how a mirror presents itself to the archives and how hard it may ask.

``contact:`` (an e-mail address or a web page) goes into every request's User-Agent,
``neuromirror/VERSION (+CONTACT)`` (:mod:`neuromirror.network.identity`).  ``network:`` caps the requests
per second and in flight per archive endpoint (:mod:`neuromirror.network.ceiling`)::

    contact: mirror-admin@lab.example.org
    network:
      max_rate: 20/s                  # every endpoint: at most 20 requests in any 1 s window
      max_in_flight: 8                # ... and 8 at once
      endpoints:                      # an endpoint's own (scheme://host[:port]), over the above
        https://api.dandiarchive.org: {max_rate: 5/s}
"""

from __future__ import annotations

from typing import Optional

from neuromirror.config.reader import Node, Reader, join_field
from neuromirror.config.rules import Rule, read_fields, read_value, text, valid, whole
from neuromirror.network.ceiling import Ceilings, Limit, origin, parse_rate

NETWORK_KEYS = ("max_rate", "max_in_flight", "endpoints")
LIMIT_RULES = (
    Rule("max_rate", parse_rate),
    Rule("max_in_flight", whole(1, None, "a whole number of requests, 1 or more")),
)


def read_contact(r: Reader, node: Node) -> Optional[str]:
    """``contact:``: one line naming whom an archive's operator may ask (no tokens: it is sent to them)."""
    value = read_value(r, node, "contact", text("an e-mail address or a web page"))
    if not valid(value):
        return None
    if "\n" in value:
        r.error(node.line, "contact", "expected one line")
        return None
    return str(value)


def _limit(r: Reader, node: Node, path: str) -> Optional[Limit]:
    m = r.mapping(node, path, tuple(rule.key for rule in LIMIT_RULES))
    if m is None:
        return None
    values, ok = read_fields(r, m, path, LIMIT_RULES)
    return Limit(values.get("max_rate"), values.get("max_in_flight")) if ok else None


def read_network(r: Reader, node: Node) -> Optional[Ceilings]:
    """``network:``: the ceiling of every endpoint, and ``endpoints:`` each one's own."""
    m = r.mapping(node, "network", NETWORK_KEYS)
    if m is None:
        return None
    values, ok = read_fields(r, m, "network", LIMIT_RULES)
    endpoints: list[tuple[str, Limit]] = []
    if "endpoints" in m:
        em = r.mapping(m["endpoints"], "network.endpoints", (), extra_ok=True)
        for name, sub in (em or {}).items():
            where = join_field("network.endpoints", name)
            if not str(name).lower().startswith(("http://", "https://")):
                r.error(sub.line, where, "expected an endpoint URL (https://HOST[:PORT])")
                ok = False
                continue
            limit = _limit(r, sub, where)
            if limit is None:
                ok = False
            else:
                endpoints.append((origin(str(name)), limit))
    if not ok:
        return None
    return Ceilings(Limit(values.get("max_rate"), values.get("max_in_flight")), tuple(endpoints))
