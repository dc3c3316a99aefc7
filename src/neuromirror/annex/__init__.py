"""The annex writer: git-annex as a storage format, written fast and checked against git-annex itself.

Knows git and git-annex (keys and their hash directories, the git-annex branch's logs, packs,
fast-import) and nothing of archives: it takes records (``Put``/``Delete`` of entries) and makes
one commit. May import the base modules (``records``, ``util``...); must not import ``standins``,
``sources``, ``index``, ``dataset``, ``engine`` or anything above them.
"""
