"""The privacy key lives outside the data files (issue 14, "Tombstones"): enumeration attack,
key-file permissions, a wrong key refused, rotation, the migration of keys out of old warehouses,
and backups that carry no key. The real beer slice through the real pipeline (``beer_copy``)."""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import time
from pathlib import Path

import duckdb
import pytest

from pulse.privacy import forget_user, rotate_key
from pulse.settings import load_settings
from pulse.steps import SourceSpec, run_pipeline
from warehouse.db import connect, migrate, migration_files, open_warehouse
from warehouse.privacy import has_tombstone, pseudonym, tombstone_hash
from warehouse.privacy_keys import KeyRing, PrivacyKeyError, derive, load_ring, parse_key, write_key_file

SOURCE = "stackexchange:beer"
USER = "73"  # Andrew Cheong: 76 items on the slice
OTHER = "4"  # a second member, erased after the rotation


@pytest.fixture
def ring_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the session's key ring (the one ``beer_built`` was keyed with) as this test's key file."""
    ring = load_ring()
    path = tmp_path / "keys" / "privacy.key"
    write_key_file(path, list(ring.keys))
    monkeypatch.delenv("PULSE_PRIVACY_KEY", raising=False)
    monkeypatch.delenv("PULSE_PSEUDONYM_KEY", raising=False)
    monkeypatch.setenv("PULSE_PRIVACY_KEY_FILE", str(path))
    return path


def _secrets_of(ring: KeyRing) -> list[bytes]:
    """Every form a key of ``ring`` could take in a file: raw bytes and hex, of the master and derived keys."""
    out = []
    for k in ring.keys:
        for raw in (bytes.fromhex(k.secret_line.removeprefix("legacy-salt:")), k.tombstone_key, k.pseudonym_key):
            if raw:
                out += [raw, raw.hex().encode()]
    return out


def _attack(path: Path, max_id: int = 20_000) -> tuple[set[str], int, float]:
    """An attacker with only the warehouse file: every hex value of 16+ digits in the ops schema
    (key ids, hashes; the pre-issue-14 layout's ``ops.privacy_keys.key_hex``) tried as the
    tombstone key, hex-decoded and as UTF-8, against the ids 1..max_id of each tombstone's
    source. Returns (ids recovered, keys tried, seconds)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        stones = con.execute("select source, user_id_hash from ops.tombstones").fetchall()
        values: set[str] = set()
        for (table,) in con.execute(
            "select table_name from information_schema.tables where table_schema = 'ops'"
        ).fetchall():
            for row in con.execute(f'select * from ops."{table}"').fetchall():
                values |= {str(v) for v in row if re.fullmatch(r"(?:[0-9a-f]{2}){8,}", str(v))}
    finally:
        con.close()
    candidates = {v.encode() for v in values} | {bytes.fromhex(v) for v in values}
    t0 = time.perf_counter()
    found = set()
    for source, h in stones:
        for key in candidates:
            found |= {str(i) for i in range(1, max_id + 1) if tombstone_hash(key, source, str(i)) == h}
    return found, len(candidates), time.perf_counter() - t0


def test_enumeration_attack_on_the_warehouse_file_recovers_no_erased_id(beer_copy: Path, ring_file: Path) -> None:
    wh, serving = beer_copy / "warehouse.duckdb", beer_copy / "serving.duckdb"
    report = forget_user(wh, SOURCE, USER, serving=serving)
    assert report.residue == {}
    found, tried, _ = _attack(wh)
    assert found == set() and tried >= 4  # the key id and the tombstone hash, as hex and decoded: not keys
    # Positive control: the same enumeration with the key from the key file finds member 73 at once.
    ring = load_ring()
    con = duckdb.connect(str(wh), read_only=True)
    (h,) = con.execute("select user_id_hash from ops.tombstones").fetchone()
    con.close()
    t0 = time.perf_counter()
    hit = [i for i in range(1, 20_001) if tombstone_hash(ring.current.tombstone_key, SOURCE, str(i)) == h]
    assert hit == [73] and time.perf_counter() - t0 < 5
    # No form of the key is in the bytes of the warehouse or the snapshot; the warehouse has its id only.
    for f in (wh, serving):
        data = f.read_bytes()
        assert [s for s in _secrets_of(ring) if s in data] == []
    con = duckdb.connect(str(wh), read_only=True)
    assert con.execute("select key_id, status from ops.privacy_key_ids").fetchall() == [
        (ring.current.key_id, "current")
    ]
    con.close()


def test_a_new_key_file_is_owner_only_and_an_open_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PULSE_PRIVACY_KEY", raising=False)
    monkeypatch.delenv("PULSE_PSEUDONYM_KEY", raising=False)
    path = tmp_path / "conf" / "pulse" / "privacy.key"
    monkeypatch.setenv("PULSE_PRIVACY_KEY_FILE", str(path))
    old = os.umask(0o022)  # a permissive process umask: the key file is owner-only anyway
    try:
        ring = load_ring()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(ring.keys) == 1 and len(ring.current.secret_line) == 64 and load_ring().ids() == ring.ids()
    for mode in (0o640, 0o604, 0o660):
        os.chmod(path, mode)
        with pytest.raises(PrivacyKeyError) as err:
            migrate(connect(":memory:"))
        assert f"chmod 600 {path}" in str(err.value) and f"{mode:04o}" in str(err.value)
        assert ring.current.secret_line not in str(err.value)
    os.chmod(path, 0o600)
    migrate(connect(":memory:"))


@pytest.mark.parametrize("bad", ["short", "00" * 31, "not hex nor base64 !!"])
def test_a_malformed_key_is_refused_without_echoing_it(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_PRIVACY_KEY", bad)
    with pytest.raises(PrivacyKeyError) as err:
        load_ring()
    assert "PULSE_PRIVACY_KEY" in str(err.value) and "32 bytes" in str(err.value) and bad not in str(err.value)
    assert parse_key(secrets.token_urlsafe(32), "x").key_id != parse_key(secrets.token_hex(32), "x").key_id


def test_a_key_that_is_not_the_warehouses_is_refused_naming_the_setting_and_the_command(
    beer_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh = beer_copy / "warehouse.duckdb"
    monkeypatch.setenv("PULSE_PRIVACY_KEY", secrets.token_hex(32))
    with pytest.raises(PrivacyKeyError) as err, open_warehouse(wh):
        pass
    msg = str(err.value)
    assert "PULSE_PRIVACY_KEY" in msg and "PULSE_PRIVACY_KEY_FILE" in msg and "pulse privacy rotate-key" in msg
    assert load_ring().current.key_id in msg


def _author_pseudonyms(serving: Path) -> dict[str, set[str]]:
    con = duckdb.connect(str(serving), read_only=True)
    try:
        return {
            mart: {
                r[0]
                for r in con.execute(
                    f"select distinct author_id from marts.{mart} where author_id is not null"
                ).fetchall()
            }
            for mart in ("hot_content", "response_times")
        }
    finally:
        con.close()


def test_rotation_keeps_erasures_and_changes_pseudonyms_consistently(
    beer_copy: Path, beer_dump: Path, ring_file: Path
) -> None:
    wh, serving = beer_copy / "warehouse.duckdb", beer_copy / "serving.duckdb"
    forget_user(wh, SOURCE, USER, serving=serving)
    old = load_ring()
    before = _author_pseudonyms(serving)
    con = duckdb.connect(str(wh), read_only=True)
    authors = [r[0] for r in con.execute("select distinct author_id from staging.content order by 1").fetchall()]
    con.close()
    both = before["hot_content"] & before["response_times"]
    author = next(a for a in authors if pseudonym(SOURCE, a, old.current.pseudonym_key) in both)

    out = rotate_key(wh, serving=serving)
    new = load_ring()
    assert (out["old_key_id"], out["new_key_id"]) == (old.current.key_id, new.current.key_id)
    assert new.ids() == [new.current.key_id, *old.ids()] and stat.S_IMODE(ring_file.stat().st_mode) == 0o600
    assert out["tombstones_by_key_id"] == {old.current.key_id: 1} and out["marts_rebuilt"] >= 10
    after = _author_pseudonyms(serving)
    # Every pseudonym changed, in both marts alike; the same author is the same new pseudonym in both.
    for mart in after:
        assert len(after[mart]) == len(before[mart]) and after[mart].isdisjoint(before[mart])
    assert pseudonym(SOURCE, author, new.current.pseudonym_key) in after["hot_content"] & after["response_times"]
    con = connect(wh)
    try:
        migrate(con)
        assert has_tombstone(con, SOURCE, USER)  # the old tombstone is still recognised (retired key)
        assert con.execute("select key_id, status from ops.privacy_key_ids order by status").fetchall() == [
            (new.current.key_id, "current"),
            (old.current.key_id, "retired"),
        ]
        (counts,) = con.execute("select counts_json from ops.privacy_requests where kind = 'rotate-key'").fetchone()
        assert json.loads(counts) == {
            "old_key_id": old.current.key_id,
            "new_key_id": new.current.key_id,
            "tombstones_kept": 1,
        }
    finally:
        con.close()
    # A member erased after the rotation is tombstoned under the new key; a re-load brings neither back.
    forget_user(wh, SOURCE, OTHER, serving=serving)
    settings = load_settings(warehouse=wh, serving=serving, scorer="lexical")
    run_pipeline(settings, SourceSpec(kind="stackexchange", path=beer_dump))
    con = duckdb.connect(str(wh), read_only=True)
    try:
        assert con.execute(
            "select key_id from ops.tombstones order by key_id = ?", [new.current.key_id]
        ).fetchall() == [
            (old.current.key_id,),
            (new.current.key_id,),
        ]
        assert con.execute(
            "select count(*) from staging.users where source = ? and user_id in (?, ?)", [SOURCE, USER, OTHER]
        ).fetchone() == (0,)
    finally:
        con.close()
    # Dropping the retired key would let erased members back in: refused, naming the key id.
    write_key_file(ring_file, [new.current])
    with pytest.raises(PrivacyKeyError, match=old.current.key_id), open_warehouse(wh):
        pass


def test_rotate_key_with_keys_in_the_environment_says_how(beer_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from pulse.cli import app

    wh = beer_copy / "warehouse.duckdb"
    current = load_ring().current
    monkeypatch.setenv("PULSE_WAREHOUSE", str(wh))
    monkeypatch.setenv("PULSE_SERVING", str(beer_copy / "serving.duckdb"))
    monkeypatch.setenv("PULSE_PRIVACY_KEY", current.secret_line)
    res = CliRunner().invoke(app, ["privacy", "rotate-key", "--yes"])
    out = " ".join(res.output.split())
    assert res.exit_code == 2 and "PULSE_PRIVACY_KEY=NEW,OLD" in out and current.secret_line not in out
    new = secrets.token_hex(32)
    monkeypatch.setenv("PULSE_PRIVACY_KEY", f"{new},{current.secret_line}")
    res = CliRunner().invoke(app, ["privacy", "rotate-key", "--yes"])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert f"{current.key_id} -> {parse_key(new, 'x').key_id}" in out and new not in out


def _legacy_warehouse(path: Path) -> tuple[str, str]:
    """A warehouse as migration 010 left it (keys inside ``ops.privacy_keys``) with member 42 of ``s`` erased.

    Returns (tombstone salt hex, pseudonym key hex)."""
    con = duckdb.connect(str(path))
    con.execute("create schema if not exists ops")
    con.execute("create table ops.migrations (name varchar primary key, applied_at timestamp not null)")
    for f in migration_files():
        if f.stem < "011":
            con.execute(f.read_text(encoding="utf-8"))
            con.execute("insert into ops.migrations values (?, current_timestamp::timestamp)", [f.stem])
    salt, pkey = (
        con.execute(f"select key_hex from ops.privacy_keys where name = '{n}'").fetchone()[0]
        for n in ("tombstone_salt", "pseudonym_key")
    )
    con.execute(
        "insert into ops.tombstones values ('s', ?, current_timestamp::timestamp, 'forget__old', 'redact', 'erased_x')",
        [tombstone_hash(bytes.fromhex(salt), "s", "42")],
    )
    con.execute("checkpoint")
    con.close()
    return salt, pkey


@pytest.mark.parametrize("configured", [False, True])
def test_migration_moves_the_keys_out_and_their_bytes_leave_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configured: bool
) -> None:
    wh = tmp_path / "data" / "warehouse.duckdb"
    wh.parent.mkdir()
    salt, pkey = _legacy_warehouse(wh)
    # Before: the attack recovers member 42 from the file alone in a fraction of a second (the finding).
    found, _, seconds = _attack(wh, max_id=1000)
    assert found == {"42"} and seconds < 5
    assert salt.encode() in wh.read_bytes()  # positive control for the byte scan below
    key_file = tmp_path / "keys" / "privacy.key"
    monkeypatch.setenv("PULSE_PRIVACY_KEY_FILE", str(key_file))
    monkeypatch.delenv("PULSE_PSEUDONYM_KEY", raising=False)
    if configured:
        monkeypatch.setenv("PULSE_PRIVACY_KEY", secrets.token_hex(32))
    else:
        monkeypatch.delenv("PULSE_PRIVACY_KEY", raising=False)
    with open_warehouse(wh) as con:
        assert has_tombstone(con, "s", "42") and not has_tombstone(con, "s", "43")
        tables = {
            r[0] for r in con.execute("select table_name from duckdb_tables() where schema_name = 'ops'").fetchall()
        }
        ids = con.execute("select status from ops.privacy_key_ids order by status").fetchall()
        stone_key = con.execute("select key_id from ops.tombstones").fetchone()[0]
    ring = load_ring()
    assert "privacy_keys" not in tables and ids == [("current",), ("retired",)]
    assert f"legacy-salt:{salt}" in key_file.read_text() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert ring.get(stone_key) is not None and ring.get(stone_key).legacy
    assert ring.current.key_id != stone_key and (ring.origin == "PULSE_PRIVACY_KEY") is configured
    # The bytes are gone: compacted; the attack finds nothing now.
    data = wh.read_bytes()
    assert salt.encode() not in data and pkey.encode() not in data and bytes.fromhex(salt) not in data
    assert not Path(f"{wh}.wal").exists() or salt.encode() not in Path(f"{wh}.wal").read_bytes()
    assert _attack(wh, max_id=1000)[0] == set()


def test_a_backup_carries_no_key_and_a_restore_needs_it(
    beer_copy: Path, ring_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pulse import backup as bk

    wh, serving = beer_copy / "warehouse.duckdb", beer_copy / "serving.duckdb"
    forget_user(wh, SOURCE, USER, serving=serving)
    monkeypatch.setenv("PULSE_BACKUP_KEY", secrets.token_urlsafe(32))
    monkeypatch.setenv("PULSE_REVIEW_STORE_URL", f"sqlite:///{tmp_path}/review.sqlite")
    monkeypatch.setenv("PULSE_ERASURE_LEDGER", str(tmp_path / "ledger.jsonl"))
    s = load_settings(warehouse=wh, serving=serving, scorer="lexical")
    result = bk.create_backup(s, tmp_path / "backups", parts=("warehouse",))
    assert "ops.privacy_keys" not in result.manifest["tables"] and "ops.privacy_key_ids" in result.manifest["tables"]
    plain = tmp_path / "plain"
    fs, root = bk.destination(tmp_path / "backups", s)
    files = bk.fetch_files(fs, f"{root}/{result.backup_id}", result.manifest, bk.master_key(s), plain)
    ring = load_ring()
    for f in files.values():
        data = Path(f).read_bytes()
        assert [x for x in _secrets_of(ring) if x in data] == []
    assert bk.verify_backup(s, tmp_path / "backups").tables == len(result.manifest["tables"])
    # A new machine without the key file: the restore refuses before replacing anything.
    monkeypatch.setenv("PULSE_PRIVACY_KEY_FILE", str(tmp_path / "new-machine" / "privacy.key"))
    wh.unlink()
    with pytest.raises(PrivacyKeyError, match="PULSE_PRIVACY_KEY_FILE") as err:
        bk.restore_backup(s, tmp_path / "backups")
    assert "restore that key file" in str(err.value)
    assert not wh.exists() and not (tmp_path / "new-machine").exists()  # and no new key was made for it
    monkeypatch.setenv("PULSE_PRIVACY_KEY_FILE", str(ring_file))  # the key file, backed up apart, is back
    report = bk.restore_backup(s, tmp_path / "backups")
    assert report.parts == ["warehouse"]
    with open_warehouse(wh) as con:
        assert has_tombstone(con, SOURCE, USER)


def test_derivation_is_hkdf_of_the_one_key() -> None:
    """RFC 5869 HKDF-SHA256, no salt, a distinct ``info`` per use: the three outputs are independent."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    master = bytes(range(32))
    k = derive(master)
    want = {
        what: HKDF(hashes.SHA256(), 32, None, f"community-pulse/{what}/v1".encode()).derive(master)
        for what in ("tombstones", "pseudonyms", "key-id")
    }
    assert (k.tombstone_key, k.pseudonym_key, k.key_id) == (
        want["tombstones"],
        want["pseudonyms"],
        want["key-id"].hex()[:16],
    )
    assert len({k.tombstone_key, k.pseudonym_key, master}) == 3


def test_pulse_run_with_a_foreign_key_is_a_configuration_error_not_a_traceback(
    beer_copy: Path, beer_dump: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from pulse.cli import app

    wh = beer_copy / "warehouse.duckdb"
    before = wh.read_bytes()
    monkeypatch.setenv("PULSE_PRIVACY_KEY", secrets.token_hex(32))
    res = CliRunner().invoke(
        app, ["run", "--source", "stackexchange", "--path", str(beer_dump), "--warehouse", str(wh),
              "--serving", str(beer_copy / "serving.duckdb"), "--scorer", "lexical"],
    )  # fmt: skip
    out = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert "Configuration error" in out and "pulse privacy rotate-key" in out and "Traceback" not in out
    assert wh.read_bytes() == before  # nothing was loaded
