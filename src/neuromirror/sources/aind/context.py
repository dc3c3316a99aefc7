"""What the source's parts need of an asset: small protocols, so that each part reads without :mod:`.source`.

:mod:`.listing`, :mod:`.zarrs` and :mod:`.entries` are handed the asset they
work on; they name here the few things they read of it, and
:class:`~neuromirror.sources.aind.source.AindSource` has them all.  The source
passes itself (nothing is copied per asset, nothing is looked up per object
but what the parts read anyway), and no part imports the source back.
"""

from __future__ import annotations

from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Optional, Protocol

from neuromirror.sources.aind.options import S3Settings


class AssetPlace(Protocol):
    """Where an asset is: its bucket settings and key prefix, and its id for the log."""

    @property
    def id(self) -> str: ...

    @property
    def settings(self) -> S3Settings: ...

    @property
    def asset_prefix(self) -> str: ...


class ListedAsset(AssetPlace, Protocol):
    """An asset to list (:mod:`.listing`): its name for the messages, the S3 client to ask."""

    @property
    def name(self) -> str: ...

    @property
    def client(self) -> Any: ...


class ZarrParent(Protocol):
    """The asset whose Zarr stores become datasets (:mod:`.zarrs`)."""

    @property
    def id(self) -> str: ...

    @property
    def dataset_path(self) -> Optional[Path]:
        """The asset's dataset, once known: its stores' datasets go inside it."""

    @property
    def zarr_executor(self) -> Optional[Executor]:
        """Set under ``--dask``: each store's commit becomes a task of the cluster."""

    def describe(self) -> str: ...


class MirroredAsset(AssetPlace, ZarrParent, Protocol):
    """An asset whose objects become entries (:mod:`.entries`): also the paths it keeps for itself."""

    @property
    def reserved(self) -> tuple[str, ...]: ...
