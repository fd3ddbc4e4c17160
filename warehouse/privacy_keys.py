"""The privacy key: one secret outside the data files, from which tombstone and pseudonym keys derive.

Issue 14: the tombstone salt and the pseudonym key used to sit in ``ops.privacy_keys`` inside
the warehouse, so whoever held the file could hash small ids and recover who was erased. Now
the warehouse holds only each key's *id* (a fingerprint, ``ops.privacy_key_ids``); the key comes from, first set wins:

* ``PULSE_PRIVACY_KEY``: one or more keys separated by commas, the current one first; each is
  hex (64+ digits) or base64 of at least 32 bytes (``python -c "import secrets;
  print(secrets.token_hex(32))"``).
* ``PULSE_PSEUDONYM_KEY`` (deprecated alias, logged as such): SHA-256 of its UTF-8 bytes is the key.
* the key file ``PULSE_PRIVACY_KEY_FILE`` (default ``$XDG_CONFIG_HOME/pulse/privacy.key``, i.e.
  ``~/.config/pulse/privacy.key``: outside ``data/``): one key per line (hex), the current one
  first, ``#`` comments. Created on first use with one random 32-byte key, mode 0600 in a 0700
  folder (always owner-only, whatever ``PULSE_FILE_MODE`` says). A key file that group or others
  may read is refused (:class:`PrivacyKeyError` naming ``chmod 600 FILE``).

The lines after the first are *retired* keys, kept so tombstones made under them are still
recognised (a tombstone is an HMAC of the id: it cannot be re-keyed without the id, which is
gone). ``legacy-salt:HEX`` entries hold the salt migration 008 generated inside the warehouse,
moved out by migration 011 (:func:`move_legacy_keys`) for the tombstones made before it.

Derivation: HKDF-SHA256 (RFC 5869), no salt, ``info`` ``community-pulse/tombstones/v1``,
``.../pseudonyms/v1`` and ``.../key-id/v1``; a key's id is the first 16 hex digits of the
last (it reveals nothing about the other two). :func:`use_privacy_keys` (run by
:func:`warehouse.db.migrate`) checks the configured key against the ids the warehouse recorded,
adopts a rotation (the ring's current key is new, the warehouse's current key is among its
retired ones) and puts the keys in the DuckDB session (``SET VARIABLE``: in memory, never in the
file): ``pulse_pseudonym_key`` for the SQL macro ``ops.pseudonym``, ``pulse_privacy_ring`` for
:func:`session_ring`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import logging
import os
import secrets
import stat
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

#: The migration whose Python half is :func:`move_legacy_keys` (run by :func:`warehouse.db.migrate` before its SQL).
KEY_MIGRATION = "011_privacy_key_ids"
#: Shortest key, in bytes (256 bits).
MIN_KEY_BYTES = 32
LEGACY_PREFIX = "legacy-salt:"
ROTATE_HINT = "`pulse privacy rotate-key`"


class PrivacyKeyError(RuntimeError):
    """The privacy key is missing, malformed, too open, or not the warehouse's; the message names the fix."""


@dataclass(frozen=True)
class PrivacyKey:
    """One key of the ring and what derives from it.

    Attributes:
        key_id: 16 hex digits (HKDF of the key, ``info`` ``.../key-id/v1``), what the warehouse records.
        tombstone_key: HMAC key of tombstone hashes (32 bytes; a legacy salt: the salt itself).
        pseudonym_key: HMAC key of pseudonyms (32 bytes; None for a legacy salt).
        secret_line: the entry as written in the key file (hex, or ``legacy-salt:HEX``).
    """

    key_id: str
    tombstone_key: bytes
    pseudonym_key: bytes | None
    secret_line: str

    @property
    def legacy(self) -> bool:
        return self.pseudonym_key is None


@dataclass(frozen=True)
class KeyRing:
    """The configured keys, the current one first; ``origin`` names where they came from (for messages)."""

    keys: tuple[PrivacyKey, ...]
    origin: str
    path: Path | None = None

    @property
    def current(self) -> PrivacyKey:
        return self.keys[0]

    def ids(self) -> list[str]:
        return [k.key_id for k in self.keys]

    def get(self, key_id: str) -> PrivacyKey | None:
        return next((k for k in self.keys if k.key_id == key_id), None)


def _hkdf(master: bytes, what: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"community-pulse/{what}/v1".encode()).derive(
        master
    )


def derive(master: bytes) -> PrivacyKey:
    """The :class:`PrivacyKey` of a master key (>= :data:`MIN_KEY_BYTES` bytes)."""
    return PrivacyKey(
        _hkdf(master, "key-id").hex()[:16], _hkdf(master, "tombstones"), _hkdf(master, "pseudonyms"), master.hex()
    )


def legacy_key(salt: bytes) -> PrivacyKey:
    """The ring entry of migration 008's in-warehouse tombstone salt (tombstones made before migration 011)."""
    return PrivacyKey(_hkdf(salt, "key-id").hex()[:16], salt, None, LEGACY_PREFIX + salt.hex())


def parse_key(text: str, where: str) -> PrivacyKey:
    """One ring entry: hex (64+ digits), base64 (standard or URL-safe) of 32+ bytes, or ``legacy-salt:HEX``.

    Raises:
        PrivacyKeyError: not decodable, or shorter than 32 bytes (the message names ``where``, never the value).
    """
    text = text.strip()
    if text.startswith(LEGACY_PREFIX):
        try:
            return legacy_key(bytes.fromhex(text[len(LEGACY_PREFIX) :]))
        except ValueError:
            raise PrivacyKeyError(f"{where}: a {LEGACY_PREFIX} entry is not hex") from None
    raw: bytes | None = None
    if len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text):
        raw = bytes.fromhex(text)
    else:
        for decode in (base64.urlsafe_b64decode, base64.b64decode):
            try:
                raw = decode(text + "=" * (-len(text) % 4))
                break
            except (binascii.Error, ValueError):
                continue
    if raw is None or len(raw) < MIN_KEY_BYTES:
        raise PrivacyKeyError(
            f"{where}: a privacy key must be hex or base64 of at least {MIN_KEY_BYTES} bytes "
            f'(make one with `python -c "import secrets; print(secrets.token_hex(32))"`)'
        )
    return derive(raw)


def key_file_path() -> Path:
    """``PULSE_PRIVACY_KEY_FILE``, else ``$XDG_CONFIG_HOME/pulse/privacy.key`` (``~/.config/pulse/privacy.key``)."""
    if os.environ.get("PULSE_PRIVACY_KEY_FILE", "").strip():
        return Path(os.environ["PULSE_PRIVACY_KEY_FILE"].strip()).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME", "").strip() or Path.home() / ".config"
    return Path(base) / "pulse" / "privacy.key"


def check_key_file(path: Path) -> None:
    """Refuse a key file that group or others may read or write.

    Raises:
        PrivacyKeyError: naming the file, its mode and the fix ``chmod 600 FILE``.
    """
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PrivacyKeyError(
            f"the privacy key file {path} has mode {mode:04o}: group or others can read it. "
            f"Run `chmod 600 {path}` (and check who read it; if in doubt, {ROTATE_HINT})"
        )


def write_key_file(path: Path, keys: list[PrivacyKey]) -> None:
    """Write ``keys`` (current first) to ``path`` atomically: a 0600 temporary file, fsync, rename.

    The folder is created 0700 when missing. Never logs or prints a key.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = (
        "# Community Pulse privacy key ring (SECURITY.md, 'Privacy keys'): the first key is current, the\n"
        "# others are retired and still recognise tombstones made under them. Keep this file secret, mode\n"
        "# 0600, and back it up apart from the data: without it, erased members are no longer recognised.\n"
        + "".join(k.secret_line + "\n" for k in keys)
    )
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, body.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read_key_file(path: Path) -> list[PrivacyKey]:
    check_key_file(path)
    lines = [ln.strip() for ln in path.read_text(encoding="ascii").splitlines()]
    return [parse_key(ln, f"key file {path}, line {i + 1}") for i, ln in enumerate(lines) if ln and ln[0] != "#"]


def load_ring(*, create: bool = True) -> KeyRing:
    """The configured key ring (module docstring: ``PULSE_PRIVACY_KEY``, ``PULSE_PSEUDONYM_KEY``, the key file).

    Args:
        create: make the key file with one new key when it does not exist (else raise).

    Raises:
        PrivacyKeyError: a malformed key, a group/world-readable key file, no current key.
    """
    env = os.environ.get("PULSE_PRIVACY_KEY", "").strip()
    old = os.environ.get("PULSE_PSEUDONYM_KEY", "")
    path = key_file_path()
    if env or old:
        if env:
            keys = [
                parse_key(p, f"PULSE_PRIVACY_KEY, entry {i + 1}") for i, p in enumerate(env.split(",")) if p.strip()
            ]
            origin = "PULSE_PRIVACY_KEY"
        else:
            _warn_deprecated()
            keys = [derive(hashlib.sha256(old.encode("utf-8")).digest())]
            origin = "PULSE_PSEUDONYM_KEY (deprecated)"
        # The key file's legacy salts (moved out of the warehouse by migration 011) still count.
        legacy = [k for k in (_read_key_file(path) if path.exists() else []) if k.legacy]
        return _ring([*keys, *[k for k in legacy if k.key_id not in {x.key_id for x in keys}]], origin)
    if not path.exists():
        if not create:
            raise PrivacyKeyError(
                f"no privacy key: set PULSE_PRIVACY_KEY or PULSE_PRIVACY_KEY_FILE ({path} is missing)"
            )
        _create_key_file(path, [])
    keys = _read_key_file(path)
    if create and (not keys or keys[0].legacy):  # only legacy salts so far: the current key is made now
        keys = [derive(secrets.token_bytes(32)), *keys]
        write_key_file(path, keys)
    return _ring(keys, f"key file {path}", path)


@functools.cache
def _warn_deprecated() -> None:
    """Say once per process that ``PULSE_PSEUDONYM_KEY`` is deprecated (every migrate loads the ring)."""
    log.warning(
        "PULSE_PSEUDONYM_KEY is deprecated: its SHA-256 is used as PULSE_PRIVACY_KEY (set that instead, "
        "hex or base64 of 32+ random bytes; SECURITY.md 'Privacy keys')"
    )


def _create_key_file(path: Path, retired: list[PrivacyKey]) -> None:
    """A new key file with one random key (plus ``retired``); a concurrent creator's file wins."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.new")
    write_key_file(tmp, [derive(secrets.token_bytes(32)), *retired])
    try:
        os.link(tmp, path)  # fails if another process created the file meanwhile
        log.warning("created the privacy key file %s (mode 0600): back it up apart from the data", path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def _ring(keys: list[PrivacyKey], origin: str, path: Path | None = None) -> KeyRing:
    if not keys or keys[0].legacy:
        raise PrivacyKeyError(f"{origin}: the first entry must be the current key (hex or base64), not a legacy salt")
    return KeyRing(tuple(keys), origin, path)


# --------------------------------------------------------------------------------------------
# The warehouse side: key ids, the session, legacy keys, rotation


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def install(con: duckdb.DuckDBPyConnection, ring: KeyRing) -> None:
    """Put ``ring`` into the DuckDB session (``SET VARIABLE``; in memory, never written to the file)."""
    con.execute("set variable pulse_pseudonym_key = ?", [ring.current.pseudonym_key.hex()])
    entries = [[k.key_id, k.tombstone_key.hex(), k.pseudonym_key.hex() if k.pseudonym_key else None] for k in ring.keys]
    con.execute("set variable pulse_privacy_ring = ?", [json.dumps({"origin": ring.origin, "keys": entries})])


def session_ring(con: duckdb.DuckDBPyConnection) -> KeyRing:
    """The ring :func:`install` put in this session; if none, :func:`use_privacy_keys` loads and checks it first."""
    raw = con.execute("select getvariable('pulse_privacy_ring')").fetchone()[0]
    if raw is None:
        return use_privacy_keys(con)
    doc = json.loads(raw)
    keys = tuple(
        PrivacyKey(i, bytes.fromhex(t), bytes.fromhex(p) if p else None, "(session)") for i, t, p in doc["keys"]
    )
    return KeyRing(keys, doc["origin"])


def move_legacy_keys(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 011's Python half: move migration 008's keys out of ``ops.privacy_keys`` before its SQL drops them.

    The tombstone salt, needed while tombstones made with it exist, is appended to the key file
    as a ``legacy-salt:`` entry (the file is created when missing; with ``PULSE_PRIVACY_KEY``
    set the file still receives it, and :func:`use_privacy_keys` says to add it to the
    variable). The in-warehouse pseudonym key is dropped: pseudonyms derive from the privacy
    key from now on (they change once; the marts are rebuilt by the next transform). Leaves
    the legacy key id in the temporary table ``_legacy_key_ids`` for the migration's SQL.
    The bytes leave the file when it is compacted (:func:`warehouse.db.open_warehouse`).
    """
    con.execute("create or replace temp table _legacy_key_ids (key_id varchar)")
    cols = {
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns where table_schema = 'ops' and table_name = 'privacy_keys'"
        ).fetchall()
    }
    if "key_hex" not in cols:
        return
    salt = con.execute("select key_hex from ops.privacy_keys where name = 'tombstone_salt'").fetchall()
    stones = con.execute("select count(*) from ops.tombstones").fetchone()[0]
    if not salt or not stones:
        return  # no tombstone needs the old salt: it is simply dropped
    legacy = legacy_key(bytes.fromhex(salt[0][0]))
    con.execute("insert into _legacy_key_ids values (?)", [legacy.key_id])
    path = key_file_path()
    have = _read_key_file(path) if path.exists() else []
    if legacy.key_id not in {k.key_id for k in have}:
        write_key_file(path, [*have, legacy])  # a file of legacy salts only gets its current key at first use
    log.warning(
        "privacy keys moved out of the warehouse: %d tombstones keep the legacy salt (key id %s), now in %s",
        stones,
        legacy.key_id,
        path,
    )


def use_privacy_keys(con: duckdb.DuckDBPyConnection, ring: KeyRing | None = None) -> KeyRing:
    """Check the configured key against the warehouse's key ids, record or adopt it, and install it in the session.

    A warehouse without a key id adopts the ring's current key (the key file is created if
    missing); for a warehouse with one, a missing key file is an error, not a new key. A ring whose current key is
    new while the warehouse's current key is among its retired ones is a rotation: adopted here
    (old id ``retired``, new id ``current``, an ``ops.privacy_requests`` row of kind
    ``rotate-key``); pseudonyms change with it (the next transform rebuilds the marts).

    Raises:
        PrivacyKeyError: the ring does not hold the warehouse's current key, or lacks a key
            that tombstones were made under; the message names the settings and the rotation command.
    """
    rows = con.execute("select key_id, status from ops.privacy_key_ids").fetchall()
    current = [k for k, s in rows if s == "current"]
    if ring is None:
        try:
            ring = load_ring(create=not current)  # a keyed warehouse never gets a new key file made for it
        except PrivacyKeyError as exc:
            if not current:
                raise
            raise PrivacyKeyError(
                f"{exc}. The warehouse was keyed with key id {current[0]}: restore that key file from its backup "
                "(SECURITY.md, 'Privacy keys')"
            ) from None
    now = _utcnow()
    if not current:
        con.execute(
            "insert into ops.privacy_key_ids values (?, 'current', ?, null) on conflict (key_id) do update set "
            "status = 'current', retired_at = null",
            [ring.current.key_id, now],
        )
    elif current[0] != ring.current.key_id:
        if ring.get(current[0]) is None:
            raise PrivacyKeyError(
                f"the privacy key ({ring.origin}, key id {ring.current.key_id}) is not the warehouse's "
                f"(key id {current[0]}): set PULSE_PRIVACY_KEY or PULSE_PRIVACY_KEY_FILE to the warehouse's key "
                f"(restore the key file from its backup). To change keys keep the old one after the new one in "
                f"the ring, or run {ROTATE_HINT}"
            )
        adopt_rotation(con, ring, current[0], now)
    needed = {
        r[0] for r in con.execute("select distinct key_id from ops.tombstones where key_id is not null").fetchall()
    }
    missing = sorted(needed - set(ring.ids()))
    if missing:
        raise PrivacyKeyError(
            f"tombstones were made under key ids {missing}, which {ring.origin} lacks: erased members would come "
            "back. Add those keys after the current one (retired lines of PULSE_PRIVACY_KEY_FILE, or entries of "
            f"PULSE_PRIVACY_KEY; a legacy-salt entry moved out by migration 011 is in {key_file_path()})"
        )
    install(con, ring)
    return ring


def adopt_rotation(con: duckdb.DuckDBPyConnection, ring: KeyRing, old_id: str, now: datetime) -> None:
    """Record the ring's current key as the warehouse's (``old_id`` retired) with a ``rotate-key`` request row."""
    con.execute("begin transaction")
    try:
        con.execute("update ops.privacy_key_ids set status = 'retired', retired_at = ? where status = 'current'", [now])
        con.execute(
            "insert into ops.privacy_key_ids values (?, 'current', ?, null) on conflict (key_id) do update set "
            "status = 'current', retired_at = null",
            [ring.current.key_id, now],
        )
        stones = con.execute("select count(*) from ops.tombstones").fetchone()[0]
        con.execute(
            "insert into ops.privacy_requests (request_id, kind, source, requested_at, finished_at, status, counts_json) "
            "values (?, 'rotate-key', '*', ?, ?, 'done', ?)",
            [
                f"rotate__{uuid.uuid4().hex[:12]}",
                now,
                now,
                json.dumps({"old_key_id": old_id, "new_key_id": ring.current.key_id, "tombstones_kept": stones}),
            ],
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    log.warning("privacy key rotated: key id %s replaces %s (%s)", ring.current.key_id, old_id, ring.origin)


def rotate_key_file(path: Path | None = None) -> tuple[KeyRing, str]:
    """Put a new random key first in the key file, the current one and the others after it (retired).

    Returns:
        (the new ring, the previous current key id).

    Raises:
        PrivacyKeyError: the key comes from ``PULSE_PRIVACY_KEY`` / ``PULSE_PSEUDONYM_KEY`` (the
            message says how to rotate there), or the key file is unreadable or too open.
    """
    if os.environ.get("PULSE_PRIVACY_KEY", "").strip() or os.environ.get("PULSE_PSEUDONYM_KEY", ""):
        raise PrivacyKeyError(
            "the privacy key comes from the environment: generate a new key "
            '(`python -c "import secrets; print(secrets.token_hex(32))"`), set PULSE_PRIVACY_KEY=NEW,OLD '
            f"(current first; keep every old key), then run {ROTATE_HINT} again to adopt it"
        )
    old = load_ring()
    path = path or old.path or key_file_path()
    keys = [derive(secrets.token_bytes(32)), *old.keys]
    write_key_file(path, keys)
    return KeyRing(tuple(keys), f"key file {path}", path), old.current.key_id
