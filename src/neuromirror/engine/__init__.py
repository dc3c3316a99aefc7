"""The sync engine: a source's snapshots -> the URL rule -> diff against HEAD -> the annex writer's
commit -> tag -> index rows -> the root's gitlink; run here or as a task elsewhere (executors, Dask).

Knows the ``Source`` protocol, not any archive in particular. May import ``sources`` (the protocol,
the Zarr listings), ``dataset``, ``index``, ``annex`` and below; must not import ``remotes``,
``pin``, ``service``, ``commands`` or ``cli``.
"""
