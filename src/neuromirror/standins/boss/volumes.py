"""The voxels: synthetic content, the resolution hierarchy, and regions of a level.

The served volumes are numpy arrays indexed by absolute voxel coordinates
(``array[z, y, x]``, shape ``(z_stop, y_stop, x_stop)`` at level 0).  Level ``r``
is computed from level ``r - 1`` by halving x and y (and z for isotropic
experiments): the mean of each 2x2(x2) block for image channels, the most
frequent non-zero label for annotation channels; odd edges are padded by
repeating the last voxel.  Nothing is written to disk.

Why pure functions of arrays: the arithmetic is the part a mirror's checksums
depend on, so it is kept apart from locks and HTTP where it can be read (and
tested) on its own.
"""

from __future__ import annotations

import numpy as np

from neuromirror.standins.boss.model import DTYPES


def synthetic_volume(channel_type: str, datatype: str, shape: tuple[int, int, int, int], seed: int) -> np.ndarray:
    """Deterministic content for a channel created without data.

    Images are a diagonal gradient plus seeded noise (so compression and
    downsampling do real work); annotations are blocks of large uint64 labels
    (above 2**32, to catch 32-bit truncation) not aligned to cuboids, a quarter of
    them background (0).  Built slice by slice to keep temporaries small.
    """
    rng = np.random.default_rng(seed)
    t_n, z_n, y_n, x_n = shape
    if channel_type == "annotation":
        bz, by, bx = 8, 48, 40
        grid = (t_n, -(-z_n // bz), -(-y_n // by), -(-x_n // bx))
        ids = rng.integers(2**32, 2**48, size=grid, dtype=np.uint64)
        ids[rng.random(grid) < 0.25] = 0
        zi = (np.arange(z_n) // bz)[:, None, None]
        yi = (np.arange(y_n) // by)[None, :, None]
        xi = (np.arange(x_n) // bx)[None, None, :]
        labels = np.empty(shape, dtype=np.uint64)
        for t in range(t_n):
            labels[t] = ids[t][zi, yi, xi]
        return labels
    dtype = np.dtype(DTYPES[datatype])
    out = np.empty(shape, dtype=dtype)
    yy = np.arange(y_n, dtype=np.int32)[:, None] // 4
    xx = np.arange(x_n, dtype=np.int32)[None, :] // 4
    for t in range(t_n):
        for z in range(z_n):
            base = (xx + yy + 3 * z + 11 * t) % 192
            if dtype == np.uint8:
                out[t, z] = base + rng.integers(0, 64, size=(y_n, x_n), dtype=np.int32)
            else:
                out[t, z] = base * 256 + rng.integers(0, 16384, size=(y_n, x_n), dtype=np.int32)
    return out


def downsample(arr: np.ndarray, factors: tuple[int, int, int], annotation: bool) -> np.ndarray:
    """Halve a (t, z, y, x) array by ``factors`` (z, y, x), each 1 or 2.

    Odd sizes are padded by repeating the edge voxel so the result has
    ``ceil(n / f)`` voxels, matching the extents the real server reports.
    Images take the (floored) block mean; annotations the most frequent non-zero
    label of the block (first one on ties), so labels survive rather than being
    averaged into nonsense ids.
    """
    fz, fy, fx = factors
    t_n, z_n, y_n, x_n = arr.shape
    pad = [(0, 0), (0, -z_n % fz), (0, -y_n % fy), (0, -x_n % fx)]
    if any(p[1] for p in pad):
        arr = np.pad(arr, pad, mode="edge")
    # The k voxels of every block, each as a strided view of the output's shape.
    cands = [arr[:, dz::fz, dy::fy, dx::fx] for dz in range(fz) for dy in range(fy) for dx in range(fx)]
    if not annotation:
        total = np.zeros(cands[0].shape, dtype=np.uint64)
        for cand in cands:
            total += cand
        return (total // np.uint64(len(cands))).astype(arr.dtype)
    # Mode: count equal pairs once each; background (0) never wins over a label.
    counts = [np.ones(cands[0].shape, dtype=np.uint8) for _ in cands]
    for i in range(len(cands)):
        for j in range(i + 1, len(cands)):
            same = cands[i] == cands[j]
            counts[i] += same
            counts[j] += same
    best = cands[0].copy()
    best_count = np.where(cands[0] != 0, counts[0], 0).astype(np.uint8)
    for cand, count in zip(cands[1:], counts[1:]):
        better = (cand != 0) & (count > best_count)
        best[better] = cand[better]
        best_count[better] = count[better]
    return best


def read_only(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


def region(level: np.ndarray, *ranges: tuple[int, int]) -> np.ndarray:
    """``level[t0:t1, z0:z1, y0:y1, x0:x1]``, zero-filled where the requested box
    passes the level's extent (allowed because requests are checked against the
    level-0 frame)."""
    inside = all(stop <= n for (_, stop), n in zip(ranges, level.shape))
    if inside:
        return level[tuple(slice(a, b) for a, b in ranges)]
    out = np.zeros(tuple(b - a for a, b in ranges), dtype=level.dtype)
    src = tuple(slice(min(a, n), min(b, n)) for (a, b), n in zip(ranges, level.shape))
    dst = tuple(slice(0, s.stop - s.start) for s in src)
    out[dst] = level[src]
    return out
