"""Encryption of backup files: AES-256-GCM in 1 MiB chunks with a key per file derived
(HKDF-SHA256) from ``PULSE_BACKUP_KEY``; each chunk's nonce carries its counter and a
last-chunk flag, so truncation, reordering and a flipped byte all fail authentication."""

from __future__ import annotations

import hashlib
import logging
import secrets
import struct
import zlib
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from pulse.settings import Settings
from pulse.backup.base import (
    CHUNK,
    MAGIC,
    BackupError,
    VerifyError,
)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Encryption: AES-256-GCM, chunked (STREAM), per-file HKDF keys


def master_key(settings: Settings) -> bytes:
    """The 32-byte master key from ``settings.backup_key`` (``PULSE_BACKUP_KEY``): SHA-256 of its UTF-8 bytes.

    Raises:
        BackupError: unset, or shorter than 32 characters (say how to make one).
    """
    secret = settings.backup_key.get_secret_value() if settings.backup_key else ""
    if len(secret) < 32:
        raise BackupError(
            "PULSE_BACKUP_KEY is "
            + ("unset" if not secret else f"too short ({len(secret)} characters, need 32+)")
            + ": backups are encrypted with it; create one with "
            '`python -c "import secrets; print(secrets.token_urlsafe(32))"` and keep it apart from the backups '
            "(without it no backup can be read)"
        )
    return hashlib.sha256(secret.encode("utf-8")).digest()


def _file_key(master: bytes, salt: bytes, name: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=f"pulse-backup/v1/{name}".encode()).derive(master)


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def encrypt_file(src: Path, dst: IO[bytes], master: bytes, name: str, *, compress: bool) -> tuple[int, str]:
    """Write ``src`` encrypted to the open binary stream ``dst``; ``name`` is bound into the key.

    Layout: ``MAGIC``, 16-byte salt, a flag byte (1 = chunks zlib-compressed), then chunks of
    ``4-byte big-endian length + AES-GCM ciphertext`` (each at most :data:`CHUNK` plaintext
    bytes; the last one, possibly empty, is flagged in its nonce).

    Returns:
        (bytes written, SHA-256 hex of the bytes written).
    """
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt = secrets.token_bytes(16)
    aead = AESGCM(_file_key(master, salt, name))
    digest = hashlib.sha256()
    size = 0

    def out(b: bytes) -> None:
        nonlocal size
        dst.write(b)
        digest.update(b)
        size += len(b)

    out(MAGIC + salt + (b"\x01" if compress else b"\x00"))
    with src.open("rb") as f:
        counter, chunk = 0, f.read(CHUNK)
        while True:
            nxt = f.read(CHUNK) if len(chunk) == CHUNK else b""
            last = not nxt
            body = aead.encrypt(_nonce(counter, last), zlib.compress(chunk, 6) if compress else chunk, None)
            out(struct.pack(">I", len(body)) + body)
            if last:
                break
            counter, chunk = counter + 1, nxt
    return size, digest.hexdigest()


def decrypt_file(src: IO[bytes], dst: Path, master: bytes, name: str) -> int:
    """Decrypt the stream ``src`` (written by :func:`encrypt_file` for ``name``) into ``dst``.

    Returns:
        Plaintext bytes written.

    Raises:
        VerifyError: not a backup file, a chunk fails authentication (wrong key, a changed
            byte, a swapped file), or the stream is truncated.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    head = src.read(len(MAGIC) + 17)
    if len(head) != len(MAGIC) + 17 or not head.startswith(MAGIC):
        raise VerifyError(name, "not an encrypted backup file (bad header)")
    compressed = head[-1:] == b"\x01"
    aead = AESGCM(_file_key(master, head[len(MAGIC) : -1], name))
    written, counter = 0, 0
    with dst.open("wb") as f:
        while True:
            raw_len = src.read(4)
            if len(raw_len) != 4:
                raise VerifyError(name, "truncated (the last chunk is missing)")
            body = src.read(struct.unpack(">I", raw_len)[0])
            plain = None
            for last in (False, True):
                try:
                    plain = aead.decrypt(_nonce(counter, last), body, None)
                    break
                except InvalidTag:
                    continue
            if plain is None:
                raise VerifyError(
                    name, f"chunk {counter} fails authentication (wrong PULSE_BACKUP_KEY, or the file was changed)"
                )
            if compressed:
                plain = zlib.decompress(plain)
            f.write(plain)
            written += len(plain)
            if last:
                if src.read(1):
                    raise VerifyError(name, "bytes after the last chunk")
                return written
            counter += 1
