"""Owner-only modes for the files the product writes (SECURITY.md, "Least privilege").

Files get ``PULSE_FILE_MODE`` (octal, default ``600``: read and write for the owner only);
folders we create get the same bits plus search (``x``) wherever read is granted (``600`` ->
``700``, ``640`` -> ``750``). Applied with ``chmod`` after writing, before a file is renamed into
place, so the published name never points at a more open file; files that libraries create
themselves (DuckDB's database and ``.wal``, SQLite's database, ``-wal`` and ``-shm``, logs) get
it from the process umask (:func:`restrict_umask`, set when the warehouse is opened for writing
and when :func:`pulse.settings.load_settings` reads the settings), which is in force the moment
the file appears, unlike a ``chmod`` after it.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_FILE_MODE = 0o600


def file_mode() -> int:
    """The mode for new files: ``PULSE_FILE_MODE`` as octal (e.g. ``640``), else 0600.

    Raises:
        ValueError: ``PULSE_FILE_MODE`` is not an octal mode between 0 and 0777, or denies the
            owner read or write.
    """
    raw = os.environ.get("PULSE_FILE_MODE", "").strip()
    if not raw:
        return DEFAULT_FILE_MODE
    mode = int(raw, 8)
    if not 0 <= mode <= 0o777 or mode & 0o600 != 0o600:
        raise ValueError(f"PULSE_FILE_MODE={raw!r}: use an octal mode such as 600 or 640 (owner read+write)")
    return mode


def dir_mode() -> int:
    """The mode for new folders: :func:`file_mode` plus ``x`` wherever ``r`` is granted."""
    mode = file_mode()
    return mode | ((mode & 0o444) >> 2)


def private_file(path: Path) -> Path:
    """``chmod`` ``path`` to :func:`file_mode`; returns ``path``."""
    os.chmod(path, file_mode())
    return path


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if missing; the folders created get :func:`dir_mode`. Returns ``path``."""
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for created in missing:
        os.chmod(created, dir_mode())
    return path


def restrict_umask() -> int:
    """Set the process umask to what :func:`dir_mode` denies (``600`` -> umask ``077``); return the old umask.

    Files then appear with at most :func:`file_mode` (``open`` asks for 0666 or 0644) and folders
    with at most :func:`dir_mode`. Process-wide and kept: DuckDB and SQLite create WAL and
    shared-memory files later, while the connection is open. ``PULSE_FILE_MODE`` is the policy,
    so a wider mode such as ``640`` (umask ``027``) is set even under a stricter inherited umask.

    Raises:
        ValueError: ``PULSE_FILE_MODE`` is invalid.
    """
    return os.umask(0o777 & ~dir_mode())
