"""An AIND asset in its own bucket, mirrored (tests/test_keep_aind.py, tests/test_restore.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

from helpers.retrieve import Runner
from neuromirror.demo import deterministic_bytes

ASSET = "ecephys_700001_2024-05-05_10-00-00"


KEPT, UNKEPT = "ecephys/kept.bin", "ecephys/unkept.bin"


SIZES = {KEPT: 12_000, UNKEPT: 9_000}


class Asset:
    """One AIND asset in its own bucket on the S3 stand-in, mirrored into ``root``."""

    def __init__(self, s3, root: Path, *, versioned: bool) -> None:  # noqa: ANN001
        self.s3 = s3
        self.bucket = f"keep-aind-{uuid.uuid4().hex[:10]}"
        s3.create_bucket(self.bucket, versioned=versioned, public=True)
        self.files = {p: deterministic_bytes(f"{self.bucket}:{p}", n) for p, n in SIZES.items()}
        s3.put(self.bucket, f"{ASSET}/data_description.json", b'{"subject_id": "700001", "modality": "ecephys"}')
        for path, data in self.files.items():
            s3.put(self.bucket, f"{ASSET}/{path}", data)
        self.run = Runner(root)
        report = self.run.json("sync", self.source, *self.s3_args)
        assert report["outcome"] == "ok", report
        self.version = report["versions"][0]["label"]

    @property
    def source(self) -> str:
        return f"aind:{ASSET}"

    @property
    def spec(self) -> str:
        return f"{self.source}@{self.version}"

    @property
    def s3_args(self) -> tuple[str, ...]:
        return ("--bucket", self.bucket, "--s3-endpoint", self.s3.endpoint_url)

    @property
    def ds(self) -> Path:
        return self.run.root / "aind" / ASSET
