"""The datasets on disk: the mirror root (a DataLad superdataset), its per-source datasets, locks,
crash recovery, and the two ways of creating a dataset (DataLad's create in a child; git + git-annex alone);
a version's files read from git (``version``: one walker for sync, pin, keep, verify, read), a version's
annexed files as keep, verify and restore walk them (``files``), and the index rebuilt from them
(``reindex``).

Knows git, git-annex and DataLad as tools; knows the index only to open it. May import ``index``
and below; must not import ``store``, ``engine``, ``pin``, ``service``, ``commands`` or ``cli`` (they
drive the datasets, not the reverse).
"""
