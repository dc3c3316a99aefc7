"""The SQLite index: a fast view of the datasets (sources, versions, file rows, runs, cache),
rebuildable from them (``neuromirror.dataset.reindex``: commit trailers, tags, trees, the git-annex branch).

Knows SQLite (sqlite-utils), the commit trailers and how to read a dataset's git-annex branch.
May import ``annex`` (keys, logs), ``sources`` (a source's remote id rule) and below; must not
import ``dataset``, ``engine``, ``pin``, ``service``, ``commands`` or ``cli``.
"""
