"""The backup page's records moved below the API, to :mod:`neuromirror.account.backup_model`; this name stays
for scripts and tests."""

from neuromirror.account.backup_model import (
    Backup,
    Count,
    Expiring,
    SourceBackup,
    Split,
    State,
    StoreBackup,
    Unkept,
    Verification,
)

__all__ = ["Backup", "Count", "Expiring", "SourceBackup", "Split", "State", "StoreBackup", "Unkept", "Verification"]
