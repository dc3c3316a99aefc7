"""A tiny BOSS experiment for tests and the demo: mirrored in seconds, still with real structure.

``BossStandIn.sample()`` (40 x 700 x 600 voxels, a 134 MB uint64 channel) is sized
for exercising intern; a mirror round trip wants far less.  :func:`tiny_sample`
serves the same collection / experiment / channels (``neuromirror_demo/exp1``:
``image8``, ``image16``, ``annotation``; 2 resolution levels; 4 x 4 x 40 nm voxels)
at (z, y, x) = (20, 96, 80).  Mirrored with :data:`TINY_CHUNK` (8 x 32 x 32) it
gives 39 chunk files per channel, with partial chunks at the z and x edges of
level 0 and the y and x edges of level 1::

    from neuromirror.standins.boss.tiny import sync_args, tiny_sample

    with tiny_sample(token="demo-token") as boss:
        # INTERN_TOKEN=demo-token neuromirror sync boss:neuromirror_demo/exp1 \\
        #     --boss-url <boss.url> --chunk 8x32x32
        ...
"""

from __future__ import annotations

from neuromirror.standins.boss.sample import SAMPLE_COLLECTION, SAMPLE_EXPERIMENT
from neuromirror.standins.boss.server import BossStandIn

__all__ = ["TINY_SHAPE", "TINY_CHUNK", "SPEC", "tiny_sample", "sync_args"]

#: (z, y, x) of the tiny sample's coordinate frame
TINY_SHAPE = (20, 96, 80)
#: chunk shape (z, y, x) to mirror it with (``--chunk 8x32x32``)
TINY_CHUNK = (8, 32, 32)
#: the SPEC naming the sample experiment
SPEC = f"boss:{SAMPLE_COLLECTION}/{SAMPLE_EXPERIMENT}"


def tiny_sample(token: str = "public-test-token", *, shape: tuple[int, int, int] = TINY_SHAPE) -> BossStandIn:
    """A populated, not yet started stand-in (``with tiny_sample(...) as boss:`` starts it)."""
    return BossStandIn.sample(shape=shape, token=token)


def sync_args(boss: BossStandIn) -> list[str]:
    """The ``neuromirror sync`` arguments that mirror the tiny sample from a running ``boss``.

    The token is not among them: put it in ``INTERN_TOKEN`` (``boss.token``).
    """
    return ["sync", SPEC, "--boss-url", boss.url, "--chunk", "x".join(map(str, TINY_CHUNK))]
