"""``publish``: the mirror's datasets pushed where anyone can clone them.

:mod:`.sibling` pushes datasets, tags and the git-annex branch to bare repositories or URL templates
(``--to BASE``); :mod:`.ria` writes a DataLad RIA store over the file system or ssh, with the lab's
kept content linked in (but not the bytes only a credential reads, :mod:`.credentials`); :mod:`.github`
makes each dataset a repository of a GitHub organisation through GitHub's API (``--to github:ORG``).  Where a dataset was last published is written into its git config for
``lock`` and ``cite`` to read (:mod:`neuromirror.pin.published`).

May import ``pin``, ``store``, ``engine``, ``dataset``, ``index``, ``sources``, ``annex`` and
below; must not import ``keep``, ``verify``, ``service``, ``commands`` or ``cli``.
"""
