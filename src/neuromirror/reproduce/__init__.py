"""What a lab does with a pinned state: get, reproduce, lock, cite, verify, publish.

Works on datasets the engine made and on the index; knows git-annex and DataLad as a user does
(clone, get, fsck). May import ``engine``, ``dataset``, ``index``, ``sources``, ``annex`` and the
base modules; must not import ``service``, ``commands`` or ``cli``.
"""
