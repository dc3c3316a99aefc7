"""NWB files written by pynwb for the reference tests (tests/test_references*.py): three shapes, their values known.

* ``timeseries``: a TimeSeries (``running_speed``, 10^6 float64 samples: 8 MB), subject and session fields;
* ``ecephys``: an ElectricalSeries of 8 channels (200,000 float32 samples each) over an electrodes table whose ``location`` names two regions;
* ``chunked``: a TimeSeries of 2 x 10^6 random int32 samples (8 MB), chunked (50,000) and gzip-compressed (H5DataIO).

Each file is unique to the dandiset it is written for (its identifier names it): a test that deletes a blob's
every S3 version must not share it with another test's dandiset.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

START = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
TIMESERIES = "sub-mouse1/sub-mouse1_ses-1_behavior.nwb"
ECEPHYS = "sub-mouse1/sub-mouse1_ses-1_ecephys.nwb"
CHUNKED = "sub-mouse2/sub-mouse2_ses-2_behavior.nwb"
REGIONS = ("CA1", "VISp")


def speed() -> np.ndarray:
    return np.arange(1_000_000, dtype="float64") / 10


def voltages() -> np.ndarray:
    return (np.arange(200_000 * 8, dtype="float32").reshape(200_000, 8) % 97) - 48


def counts() -> np.ndarray:
    return np.random.default_rng(60).integers(0, 1 << 30, 2_000_000, dtype="int32")


def _nwb(tag: str, session_id: str, subject_id: str) -> object:
    from pynwb import NWBFile
    from pynwb.file import Subject

    return NWBFile(
        session_description=f"reference test {session_id}",
        identifier=f"neuromirror-{tag}-{session_id}",
        session_start_time=START,
        session_id=session_id,
        subject=Subject(subject_id=subject_id, species="Mus musculus", sex="F", age="P90D"),
    )


def _bytes(nwb: object) -> bytes:
    from pynwb import NWBHDF5IO

    with tempfile.TemporaryDirectory(prefix="neuromirror-nwb-") as tmp:
        path = Path(tmp) / "x.nwb"
        with NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)
        return path.read_bytes()


def timeseries_nwb(tag: str) -> bytes:
    from pynwb import TimeSeries

    nwb = _nwb(tag, "ses-1", "mouse1")
    nwb.add_acquisition(TimeSeries(name="running_speed", data=speed(), unit="m/s", rate=100.0))  # type: ignore[attr-defined]
    return _bytes(nwb)


def ecephys_nwb(tag: str) -> bytes:
    from pynwb.ecephys import ElectricalSeries

    nwb = _nwb(tag, "ses-1e", "mouse1")
    device = nwb.create_device(name="probe")  # type: ignore[attr-defined]
    group = nwb.create_electrode_group(name="shank0", description="shank", location="brain", device=device)  # type: ignore[attr-defined]
    for i in range(8):
        nwb.add_electrode(group=group, location=REGIONS[i // 4])  # type: ignore[attr-defined]
    region = nwb.create_electrode_table_region(region=list(range(8)), description="all")  # type: ignore[attr-defined]
    series = ElectricalSeries(name="ElectricalSeries", data=voltages(), electrodes=region, rate=30_000.0)
    nwb.add_acquisition(series)  # type: ignore[attr-defined]
    return _bytes(nwb)


def chunked_nwb(tag: str) -> bytes:
    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from pynwb import TimeSeries

    nwb = _nwb(tag, "ses-2", "mouse2")
    data = H5DataIO(counts(), chunks=(50_000,), compression="gzip", compression_opts=4)
    nwb.add_acquisition(TimeSeries(name="lick_counts", data=data, unit="n", rate=50.0))  # type: ignore[attr-defined]
    return _bytes(nwb)


def files(tag: str) -> dict[str, bytes]:
    """The three files, by their paths in the dandiset."""
    return {TIMESERIES: timeseries_nwb(tag), ECEPHYS: ecephys_nwb(tag), CHUNKED: chunked_nwb(tag)}
