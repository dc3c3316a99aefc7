"""LINDI references of a pin's NWB/HDF5 files: made once per git-annex key, read through, searched.

A pinned file's bytes never change, so neither does its LINDI reference (the JSON "reference file system"
of ``NeurodataWithoutBorders/lindi``: the group tree, attributes and small datasets inline, each chunk as
``[pinned URL, offset, length]``): pynwb opens the file from it in one read instead of walking HDF5's
metadata request by request.  :mod:`.make` builds one through ``neuromirror://`` in 32 KiB blocks (a few %
of the file's bytes), every chunk pointing at the key's pinned archive URL; :mod:`.location` keeps it under
the mirror root, one per key (``.neuromirror/lindi/``); :mod:`.reading` opens a file of a pin through it
(h5py-compatible: ``pynwb.NWBHDF5IO(file=...)``), every chunk read through the same read as
``neuromirror://`` (the store when the archive lost the bytes), else through h5py; :mod:`.fields` puts the
session's, subject's and electrodes' fields into the index (``search --nwb-field``); :mod:`.batch` makes
the references of the new keys a sync recorded (``sync --references``, ``references: nwb``).
:mod:`.lindi_env` imports lindi lazily: it pins zarr < 3 (lindi#119), so it lives in an environment of its
own (``pip install 'neuromirror[references]'``).

May import what :mod:`neuromirror.read` may (``pin``, ``store``, ``engine``, ``index``, ``annex`` and
below) and ``read`` itself; must not import ``keep``, ``verify``, ``commands`` or ``cli``.
"""
