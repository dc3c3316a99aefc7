"""The backup page (``status --backup``, ``/backup/`` and ``/backup.json`` of ``serve --http``): per source and
store, what the archive holds against what the lab's stores hold, and what is at risk.

The records and the numbers are :mod:`neuromirror.account.backup_model` and :mod:`neuromirror.account.backup`
(below the API, which computes them once); here :mod:`.render`, the HTML page.  The JSON is the records' own
(``to_json``), documented in docs/keep.md, *The backup page*.
"""
