"""Shared names of the backup package: format constants, errors, the review-store tables
a PostgreSQL backup dumps, and the clock."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    pass


FORMAT = "community-pulse/backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json.enc"
#: Plaintext bytes per encrypted chunk.
CHUNK = 1 << 20
MAGIC = b"PULSEBK1"
#: The review store's tables a PostgreSQL backup dumps (those that exist).
PG_TABLES = (
    "review_users",
    "review_items",
    "review_decisions",
    "review_signin_failures",
    "api_keys",
    "live_queue_items",
    "webhook_deliveries",
)
Part = Literal["warehouse", "review-store"]
PARTS: tuple[Part, ...] = ("warehouse", "review-store")
_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


class BackupError(RuntimeError):
    """A backup command could not be carried out; the message says why and what to do."""


class RunActiveError(BackupError):
    """A pipeline run is active (``ops.runs`` status ``running``) or the warehouse is open for writing."""


class VerifyError(BackupError):
    """A backup failed verification; ``file`` names the file (relative to the backup folder)."""

    def __init__(self, file: str, message: str) -> None:
        super().__init__(f"{file}: {message}")
        self.file = file


def utcnow() -> datetime:
    """Now as naive UTC (the warehouse's convention)."""
    return datetime.now(UTC).replace(tzinfo=None)
