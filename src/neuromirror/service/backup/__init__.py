"""The backup page (``status --backup``, ``/backup/`` and ``/backup.json`` of ``serve --http``): per source and
store, what the archive holds against what the lab's stores hold, and what is at risk.

:mod:`.model` the typed records (one :class:`~.model.Backup` computed once, rendered three ways);
:mod:`.compute` the numbers, from the index alone (a few queries for the whole mirror, none per version);
:mod:`.render` the lines ``status --backup`` prints and the HTML page.  The JSON is the records' own
(``to_json``), documented in docs/keep.md, *The backup page*.
"""
