"""``account``: the mirror's account of itself -- what it holds, what the lab's stores hold, what is at risk.

:mod:`.status` the status report (one row per source, merged from the index, the running service's
``service.json`` and the definitions: ``neuromirror status``, ``/status.json``, the pages, ``/metrics``);
:mod:`.risk` the live at-risk counts ``status`` adds to its rows; :mod:`.backup_model` and :mod:`.backup` the
backup page's records and numbers, from the index alone (``status --backup``, ``/backup/``), and
:mod:`.backup_text` the lines ``status --backup`` prints.

Why a package of its own, here: the API reports these (``Mirror.status``, ``Mirror.backup``) and the service,
which stands on the API, shows them; so they sit below the API.  They read what the syncs, keeps, checks and
drills recorded, so they sit above ``verify``, ``audit`` and ``restore`` (the audit's findings, the noncurrent
rule and the drills are theirs) (packages of one layer never import each other, hence a layer between).

May import ``verify``, ``audit``, ``restore``, ``maintain`` and anything below; must not import ``api``,
``service``, ``commands`` or ``cli`` (they stand on it).
"""
