"""Stores: where a lab keeps the content of the versions it must not lose (``neuromirror keep``).

A store is named by a URL or a path (``--store``/``--to``, env ``NEUROMIRROR_STORE``): :mod:`.location`
reads the name; :mod:`.base` says what ``keep`` needs of any store; :mod:`.directory` (a local or
network directory laid out exactly as a git-annex ``directory`` special remote, written atomically)
and :mod:`.s3` (a bucket laid out as git-annex's ``S3`` special remote, an object visible only once
its bytes were verified) are the two kinds; :mod:`.annexlog` the lines
git-annex reads about a store on a dataset's git-annex branch, and :mod:`.record` writes them (the
store's remote record, and which keys it holds) so that every clone finds the store by itself;
:mod:`.transfer` brings one key's bytes into a store, verified, and :mod:`.holders` reads which stores
hold each key (keep, verify and restore share both).

Knows git-annex's formats and commands, nothing of archives or of how content gets here. May
import ``index``, ``annex``, ``sources`` (only if needed) and below; must not import ``dataset``,
``engine``, ``pin``, ``service``, ``commands`` or ``cli`` (the caller takes
the source's lock before :mod:`.record` writes a dataset's git-annex branch).
"""
