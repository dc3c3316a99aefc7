"""The DANDI source's ``sync`` options, in a module of their own: every command's parser is built at
start-up, and the source module (the dandi client, requests, the Zarr machinery) is not needed for that."""

from __future__ import annotations

import os
from typing import Any

DEFAULT_API = "https://api.dandiarchive.org/api"


def add_options(group: Any) -> None:
    group.add_argument(
        "--dandi-api",
        metavar="URL",
        default=os.environ.get("NEUROMIRROR_DANDI_API"),
        help=f"DANDI API URL (env NEUROMIRROR_DANDI_API; default {DEFAULT_API})",
    )
