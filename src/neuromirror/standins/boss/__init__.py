"""A stand-in BOSS (bossdb / neurodata) API server on loopback.

Why this exists: neuromirror mirrors BOSS experiments into DataLad datasets through
the real ``intern.remote.boss.BossRemote`` client.  Tests and the demo must run
without internet, so this package serves the part of the BOSS v1 REST API that
intern 1.4.x uses for reading, with the request and response shapes of the real
server (``jhuapl-boss/boss``: bosscore serializers and resource views,
bossspatialdb cutout/downsample views, bossmeta views), so that the client runs
unchanged against it::

    with BossStandIn.sample() as boss:  # neuromirror.standins.boss.server
        rmt = BossRemote(boss.remote_config())
        chan = rmt.get_channel("image8", "neuromirror_demo", "exp1")
        arr = rmt.get_cutout(chan, 0, [0, 600], [0, 700], [0, 40])
        assert (arr == boss.volume("neuromirror_demo", "exp1", "image8")).all()

Behaviour taken from the real server (and kept on purpose, since the mirror tool
must cope with it):

* Routes are ``/v1/collection/...``, ``/v1/coord/...``, ``/v1/cutout/...``,
  ``/v1/downsample/...`` and ``/v1/meta/...``; trailing slashes are optional and
  intern lists collections with ``GET /v1/collection//``.
* Auth is DRF token auth: ``Authorization: Token <key>``.  A wrong key gives
  ``401 {"detail": "Invalid token."}``.  No header at all is *not* refused
  outright (the BOSS uses ``IsAuthenticatedOrReadOnly``): anonymous callers see
  only resources flagged ``public``; lists silently omit the others and reading a
  non-public resource gives ``403 {"status": 403, "code": 3001, "message": ...}``.
* Cutouts: ``Accept: application/blosc`` (intern's choice; also the default) ->
  ``blosc.compress(c_order_bytes, typesize=<bits per voxel>)`` of the (z, y, x)
  or, with a time range, (t, z, y, x) array.  ``application/blosc-python``
  (``blosc.pack_array``) and ``application/npygz`` (zlib of an ``.npy``) are
  served too.  Ranges are validated against the *coordinate frame* (level-0)
  bounds at every resolution, as the real server does; voxels past a level's
  downsampled extent come back as zeros.  Requests over 520 MiB uncompressed
  (a quarter of that counted for uint64) get 413.
* ``/v1/downsample/{c}/{e}/{ch}`` reports extents per level as repeated
  ``ceil(n / 2)`` of the coordinate frame's *stop* values.

The public class is :class:`neuromirror.standins.boss.server.BossStandIn`; the other
modules are its parts, bottom up: ``model`` (collections, frames, experiments,
channels), ``volumes`` (voxels: synthetic content, levels, regions), ``archive``
(the Python API that builds the data), ``sample`` (the sample experiment),
``protocol`` (errors, routes, the request log), ``resources`` (the JSON routes),
``cutout`` (the voxel route and its encodings) and ``server``; ``tiny`` is a tiny
sample for mirror round trips.

The package may import :mod:`neuromirror.standins.faults` and the base modules,
nothing of the tool itself: the stand-in is the archive, not the mirror.
"""
