"""The fingerprint columns the 10^6-key readers share (a branch's logs, a packed store's keys, a keep's key sets):
every lookup answers as a dict of the strings would, strings whose string hash collides included."""

from __future__ import annotations

import numpy as np

from neuromirror.keep.keyset import KeySet
from neuromirror.util.memory import fingerprints


class _SameHash(str):
    def __hash__(self) -> int:  # every string one hash: the CRC beside it tells them apart
        return 7


def _columns(texts: list[str]) -> tuple[np.ndarray, ...]:
    h = np.array([hash(t) for t in texts], dtype=np.int64)
    c = np.array([fingerprints.crc32_of(t) for t in texts], dtype=np.uint32)
    return fingerprints.ordered(h, c, np.arange(len(texts)))


def test_lookups_answer_as_a_dict_would() -> None:
    texts = [f"MD5E-s{i}--{i:032x}.bin" for i in range(2000)] + [_SameHash(f"collide-{i}") for i in range(5)]
    h, c, row = _columns(texts)
    absent = ["MD5E-s1--nothing.bin", _SameHash("collide-absent")]
    asked = texts[::7] + absent

    at = fingerprints.first(h, c, asked)
    assert [texts[row[i]] if i >= 0 else None for i in at.tolist()] == texts[::7] + [None, None]
    assert [[texts[row[j]] for j in r] for r in fingerprints.every(h, c, asked)] == [[t] for t in texts[::7]] + [[], []]
    assert all(fingerprints.has(h, c, t) for t in texts[::7]) and not any(fingerprints.has(h, c, t) for t in absent)
    empty = np.zeros(0, np.int64), np.zeros(0, np.uint32)
    assert fingerprints.first(*empty, asked).tolist() == [-1] * len(asked)
    assert fingerprints.every(*empty, ["x"]) == [range(0)]


def test_a_string_with_several_rows_gets_them_all_in_the_order_given() -> None:
    texts = ["a", "b", "a", _SameHash("c"), _SameHash("d"), _SameHash("c")]
    h, c, row = _columns(texts)
    (a, b, cc, d) = fingerprints.every(h, c, ["a", "b", _SameHash("c"), _SameHash("d")])
    assert [int(row[j]) for j in a] == [0, 2] and [int(row[j]) for j in b] == [1]
    assert [int(row[j]) for j in cc] == [3, 5] and [int(row[j]) for j in d] == [4]


def test_a_keyset_past_its_compaction_keeps_every_key(monkeypatch) -> None:
    from neuromirror.keep import keyset

    monkeypatch.setattr(keyset, "COMPACT_MIN", 10)
    keys = [f"k{i}" for i in range(95)] + [_SameHash(f"s{i}") for i in range(12)]
    held = KeySet(keys)
    assert all(k in held for k in keys)
    assert "k95" not in held and _SameHash("s12") not in held and 3 not in held
