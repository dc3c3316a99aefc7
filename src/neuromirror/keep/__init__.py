"""``keep``: pinned versions' content copied into the lab's store and recorded where every clone looks.

Knows which files of a version a store still lacks, the run over versions with its threads, budget
and recording (:mod:`.versions`), ``keep --lock`` (:mod:`.lock`) and the report (:mod:`.report`).  A
version's files (``dataset.files``), how one key travels into a store (``store.transfer``) and which
stores hold a key (``store.holders``) are below it, shared with ``verify`` and ``restore`` as peers;
how a store lays out its files is ``store/``'s business, not this package's.

May import ``pin`` (file lists, lock files), ``store``, ``engine``, ``dataset``, ``index``,
``sources``, ``annex`` and below; must not import ``verify``, ``publish``, ``service``,
``commands`` or ``cli``.
"""
