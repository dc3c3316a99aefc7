"""Mirror definitions: ``mirrors/*.yaml`` files naming sources, options, schedules and publish targets.

Read by the service, ``neuromirror sync --config`` and ``check-config``: :mod:`.load` reads
and merges files (every problem reported as ``file:line: field: message``, all at once),
:mod:`.model` is the typed result they get (:class:`~.model.MirrorConfig`,
:class:`~.model.SourceConfig`, :class:`~.schedule.Schedule`, :class:`~.schedule.Backoff`).

May import anything below it (it uses ``sources``, for the options they add, and the base
modules); must not import ``pin``, ``service``, ``commands`` or ``cli``, which read it.  Cheap to import:
yaml and the standard library only; apscheduler and the source modules are imported while
validating.
"""
