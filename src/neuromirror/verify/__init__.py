"""``verify``: do the dataset, the index, the archive, the bytes and the lab's store agree about a version?

:mod:`.version` runs the checks (tree against index against git-annex branch); :mod:`.archive`
lists the version at the archive again, :mod:`.content` hashes bytes, :mod:`.risk` says what is at
risk (kept, pinned URL only, mutable URL only), :mod:`.lost_urls` marks keys whose archive URLs are
gone on the git-annex branch (clones then go to a store first), :mod:`.report` prints it all.

May import ``keep`` (a version's annexed files), ``pin``, ``store``, ``engine``, ``dataset``,
``index``, ``sources``, ``annex`` and below; must not import ``restore``, ``maintain``, ``service``,
``commands`` or ``cli``.
"""
