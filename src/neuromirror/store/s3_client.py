"""How the S3 store talks to S3: the region, one boto3 client per store, botocore's errors.

Apart from :mod:`.s3` (the store's layout and its uploads) because it is the part that knows boto3:
how a client is configured (path-style addressing on a named endpoint, retries, unsigned for a reader
with no credentials) and the one service-model loader every store's session shares.  Credentials come
from boto3's own chain and are never written anywhere.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Optional

REGION_ENV = "NEUROMIRROR_STORE_REGION"
#: where the environment holds a store's S3 credentials (boto3's and git-annex's names)
CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def default_region() -> str:
    """The store's region: NEUROMIRROR_STORE_REGION, else AWS_REGION / AWS_DEFAULT_REGION, else us-east-1."""
    for env in (REGION_ENV, "AWS_REGION", "AWS_DEFAULT_REGION"):
        value = os.environ.get(env, "").strip()
        if value:
            return value
    return "us-east-1"


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def boto_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)


def make_client(endpoint: Optional[str], region: str) -> Any:
    """A boto3 S3 client (thread-safe) for ``endpoint`` (None: AWS): path-style on a named endpoint,
    retried, unsigned when the environment has no credentials (a reader of a public bucket)."""
    import boto3

    from neuromirror.network.identity import botocore_config

    config = botocore_config(  # named: a store's requests say whose mirror asks, as the archives' do
        s3={"addressing_style": "path" if endpoint else "auto"},
        retries={"max_attempts": 5, "mode": "standard"},
        max_pool_connections=64,
    )
    session = boto3.session.Session(botocore_session=_botocore_session())
    if session.get_credentials() is None:  # a reader with no credentials: a public bucket, unsigned
        from botocore import UNSIGNED

        config = config.merge(botocore_config(signature_version=UNSIGNED))
    return session.client("s3", endpoint_url=endpoint, region_name=region, config=config)


def load_models() -> None:
    """S3's service model and endpoint data read into the loader every store's client shares, now (a Dask
    worker's start: :func:`neuromirror.keep.cluster.dask_setup`) rather than at the first store's client; a
    throwaway client with placeholder keys, so that no credential chain (nor an instance's metadata) is asked."""
    import boto3

    from neuromirror.network.identity import botocore_config

    session = boto3.session.Session(botocore_session=_botocore_session())
    session.client(
        "s3", region_name=default_region(), aws_access_key_id="-", aws_secret_access_key="-", config=botocore_config()
    )  # named as every client of the house is (network.identity), though it sends nothing


#: botocore's loader of service models, shared by every store's session (made on first use)
_LOADER: Any = None
_LOADER_LOCK = threading.Lock()


def _botocore_session() -> Any:
    """A new botocore session (its own credentials, read from the environment now) over one shared loader.

    Why (issue 59): each client made with a session of its own parsed S3's service model again, ~0.1 s of CPU
    and ~13 MB that the process kept after the client was gone: five per service cycle with a directory and an
    S3 store.  The loader holds only the models and endpoint data shipped with botocore, nothing per account."""
    import botocore.loaders
    import botocore.session

    global _LOADER
    with _LOADER_LOCK:
        if _LOADER is None:
            _LOADER = botocore.loaders.create_loader()
    session = botocore.session.get_session()
    session.register_component("data_loader", _LOADER)
    return session
