"""A pinned state and how a lab gets it back: pin, lock, cite, clone, get, reproduce, file lists.

Knows a version as the index and its dataset record it (commit, tag, DOI, the file list and its
digest), the TOML lock file, citations, and git-annex and DataLad as a user does (clone, check out,
``git annex get``, the lab's store enabled in a clone).  The other rooms build on it: ``keep``,
``verify`` and ``publish`` read pins and file lists from here.

May import ``engine``, ``dataset``, ``store``, ``index``, ``sources``, ``annex`` and below;
must not import ``keep``, ``verify``, ``publish``, ``service``, ``commands`` or ``cli``
(where a pin was published is read from the dataset's git config, :mod:`.published`).
"""
