"""Where backups live: a local folder or an fsspec URL (``s3://bucket/prefix``), backup ids
(``YYYYMMDDTHHMMSSZ-xxxxxx``, sortable by time) and listing them."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulse.settings import Settings
from pulse.backup.base import (
    _ID,
)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Destinations (fsspec)


def destination(dest: str | Path, settings: Settings | None = None) -> tuple[Any, str]:
    """``(filesystem, root path)`` of a backup destination: a folder or an fsspec URL (``s3://bucket/prefix``).

    ``settings.backup_storage_options`` (``PULSE_BACKUP_STORAGE_OPTIONS__ENDPOINT_URL=...``) are
    passed to the filesystem; credentials come from the filesystem's own environment
    (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` for S3).
    """
    import fsspec

    options = dict(settings.backup_storage_options) if settings is not None else {}
    text = str(dest)
    if "://" not in text:
        Path(text).mkdir(parents=True, exist_ok=True)
        text = str(Path(text).resolve())
    fs, root = fsspec.core.url_to_fs(text, **options)
    return fs, root.rstrip("/")


def _new_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%S}Z-{uuid.uuid4().hex[:6]}"


def _id_time(backup_id: str) -> datetime:
    return datetime.strptime(backup_id[:15], "%Y%m%dT%H%M%S")


def backup_ids(fs: Any, root: str) -> list[str]:
    """Ids of the backup folders under ``root`` (complete or not), oldest first."""
    try:
        entries = fs.ls(root, detail=False)
    except FileNotFoundError:
        return []
    return sorted(name for e in entries if _ID.match(name := e.rstrip("/").rsplit("/", 1)[-1]))
