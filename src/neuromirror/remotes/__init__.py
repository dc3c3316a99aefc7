"""git-annex external special remotes (programs git-annex starts): BOSS chunks via intern, embargoed
DANDI content with the reader's own API key. Console scripts ``git-annex-remote-neuromirror[-dandi]``.

Each reads its credential at retrieval time from the environment, never from the dataset. May
import ``dataset``, ``store``, ``index`` and below (it needs only ``sources``, to speak the archive,
and ``annex.keys``); must not import ``engine``, ``pin`` or anything above.
"""
