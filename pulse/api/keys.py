"""API keys (stored hashed in the review store) and per-key token-bucket rate limits.

Keys: ``pulse api key create NAME`` makes ``pk_`` + 43 URL-safe characters from
``secrets.token_urlsafe(32)`` (256 random bits), prints it once and stores only its SHA-256 hex
digest (plus the first 8 characters, to tell keys apart in ``pulse api key list``). A plain
SHA-256 is enough here, unlike for passwords (bcrypt in the review store): a password has little
entropy, so a slow hash is what stops a dictionary attack on a stolen hash; a 256-bit random key
has no dictionary, and inverting SHA-256 for it takes ~2^256 work whatever the hash speed. A fast
hash also lets every request be checked without spending ~0.2 s of CPU. Lookup is by the digest
(a timing difference there reveals nothing about the key: an attacker does not know the digest of
a key they do not have), then the stored digest is compared with :func:`hmac.compare_digest`.

Table ``api_keys`` lives in the review store's database (its own :class:`sqlalchemy.MetaData` on
the store's engine; ``create_all`` is idempotent): ``name`` (primary key), ``key_hash`` (unique),
``prefix``, ``created_at``, ``revoked_at`` (null while valid). Revoking keeps the row (the name
stays taken, so an old key never comes back under a reused name). Checked keys are cached for
:data:`CACHE_SECONDS`, so a revocation takes effect within that time on a running server.

Rate limits: a token bucket per key (:class:`TokenBucket`; the algorithm of RFC 2697's
single-rate meter and of most API gateways): ``rate`` tokens per second refill a bucket of
``burst`` tokens; a request takes one token or is refused with 429 and ``Retry-After`` = the
seconds until a token is back (rounded up).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

KEY_PREFIX = "pk_"
CACHE_SECONDS = 5.0
"""How long a checked key is trusted without asking the store again (revocation delay)."""

metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("revoked_at", sa.DateTime),
)  # fmt: skip


def hash_key(key: str) -> str:
    """SHA-256 hex digest of a key (64 characters)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class APIKey:
    """A key's record (never the key itself)."""

    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class KeyStore:
    """API keys in the review store's database.

    Args:
        engine: the review store's SQLAlchemy engine (``ReviewStore(url).engine``).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database is unreachable.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        metadata.create_all(engine, checkfirst=True)
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def create(self, name: str) -> str:
        """Create a key named ``name`` and return it (the only time it is ever shown).

        Raises:
            ValueError: empty or over-long name, or a key of that name exists (revoked keys too).
        """
        name = name.strip()
        if not name or len(name) > 64:
            raise ValueError("a key name is 1 to 64 characters, e.g. the client's name (coral-talk)")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(UTC).replace(tzinfo=None)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    api_keys.insert().values(name=name, key_hash=hash_key(key), prefix=key[:8], created_at=now)
                )
        except sa.exc.IntegrityError:
            raise ValueError(f"a key named {name!r} exists (revoked names stay taken); choose another name") from None
        return key

    def list(self) -> list[APIKey]:
        """Every key's record, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.name)).mappings().all()
        return [APIKey(r["name"], r["prefix"], r["created_at"], r["revoked_at"]) for r in rows]

    def revoke(self, name: str) -> bool:
        """Revoke the key named ``name``; False when no valid key has that name."""
        now = datetime.now(UTC).replace(tzinfo=None)
        with self.engine.begin() as conn:
            done = conn.execute(
                api_keys.update().where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None)).values(revoked_at=now)
            ).rowcount
        with self._lock:
            self._cache.clear()
        return bool(done)

    def check(self, key: str | None) -> str | None:
        """The name of the valid key ``key``, or None (missing, unknown or revoked)."""
        if not key or len(key) > 200:
            return None
        digest = hash_key(key)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(api_keys.c.name, api_keys.c.key_hash, api_keys.c.revoked_at).where(
                    api_keys.c.key_hash == digest
                )
            ).first()
        name = (
            row.name
            if row is not None and row.revoked_at is None and hmac.compare_digest(row.key_hash, digest)
            else None
        )
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, name)
        return name


class TokenBucket:
    """Per-key token buckets (thread-safe).

    Args:
        rate: tokens added per second (> 0): the sustained requests per second per key.
        burst: bucket size (>= 1): requests a key may make at once after being idle.
        clock: seconds, monotonic (tests pass a fake clock).
    """

    def __init__(self, rate: float, burst: int, clock: Any = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take one token for ``key``: 0.0 when allowed, else the seconds until one is back (> 0)."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


def retry_after(wait_s: float) -> str:
    """``Retry-After`` header value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(wait_s)))
