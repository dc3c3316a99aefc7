"""Scenarios of a mirror kept up for months, as ``neuromirror serve`` keeps it: :mod:`.soak` (issue 59,
``service-soak``: the service's own cost, two ``serve`` processes side by side), :mod:`.sync_soak` (issue 32,
``soak``: a mirror synced again and again as the service runs it), :mod:`.archive_quiet` (issue 32,
``archive-quiet``: the whole archive's quiet hour, a ``dandi:*`` cycle when almost nothing changed)."""
