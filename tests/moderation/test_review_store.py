"""Review store: state machine, append-only audit log, optimistic concurrency with two real
concurrent writers, auth — each against SQLite (WAL) AND a real PostgreSQL server."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from moderation.review_store import (
    ACTIONS,
    DECISION_COLUMNS,
    STATES,
    TRANSITIONS,
    UNDO_ACTION,
    AuthorizationError,
    ConflictError,
    Decision,
    ReviewError,
    ReviewStore,
    TransitionError,
    effective_state,
    normalize_url,
    redact_url,
)

PASSWORD = "correct horse battery staple"
T0 = datetime(2026, 11, 1, 12, 0, 0)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'review.sqlite'}"
    url = request.getfixturevalue("postgres_db")
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def store(store_url: str):
    s = ReviewStore(store_url, bcrypt_rounds=4)
    s.create_schema()
    s.create_schema()  # idempotent
    s.add_user("alice", name="Alice", email="alice@example.org", role="moderator", password=PASSWORD)
    s.add_user("bob", name="Bob", email="bob@example.org", role="moderator", password=PASSWORD + "!")
    s.add_user("mia", name="Mia", email="mia@example.org", role="manager", password=PASSWORD)
    s.add_user("root", name="Root", email="root@example.org", role="admin", password=PASSWORD)
    yield s
    s.dispose()


def _decide(store: ReviewStore, content_id: str, action: str, version: int, actor: str = "alice", **kw) -> Decision:
    return store.decide(
        source="beer",
        content_id=content_id,
        action=action,
        actor=actor,
        expected_version=version,
        content_hash=kw.pop("content_hash", "h1"),
        **kw,
    )


def test_sqlite_is_in_wal_mode(tmp_path: Path) -> None:
    s = ReviewStore(f"sqlite:///{tmp_path / 'sub' / 'r.sqlite'}")
    s.create_schema()
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
    assert (tmp_path / "sub" / "r.sqlite").exists()
    s.dispose()


def test_urls_are_normalised_and_redacted() -> None:
    assert normalize_url("postgresql://u:pw@h/db") == "postgresql+psycopg://u:pw@h/db"
    assert normalize_url("postgres://u:pw@h/db") == "postgresql+psycopg://u:pw@h/db"
    assert "s3cret" not in redact_url("postgresql+psycopg://u:s3cret@h:5432/db")
    assert "s3cret" not in repr(ReviewStore("postgresql+psycopg://u:s3cret@127.0.0.1:1/db"))
    with pytest.raises(ValueError, match="PULSE_REVIEW_STORE_URL"):
        ReviewStore("mysql://u:s3cret@h/db")


# ------------------------------------------------------------------ state machine

LEGAL = [(s, a) for s in STATES for a in sorted(TRANSITIONS.get(s, set()))]
ILLEGAL = [(s, a) for s in STATES for a in ACTIONS if a not in TRANSITIONS.get(s, set())]


def _bring_to(store: ReviewStore, content_id: str, state: str) -> int:
    """Put an item into ``state``; returns its version."""
    if state == "pending":
        return 0
    if state == "escalated":
        _decide(store, content_id, "escalate", 0)
        return 1
    _decide(store, content_id, {"approved": "approve", "removed": "remove"}[state], 0)
    return 1


def test_transition_table_is_complete() -> None:
    assert len(LEGAL) == 7 and ("approved", "reopen") in LEGAL and ("removed", "reopen") in LEGAL
    assert set(ILLEGAL) == {
        ("pending", "reopen"),
        ("escalated", "reopen"),
        ("escalated", "escalate"),
        ("approved", "approve"),
        ("approved", "escalate"),
        ("approved", "remove"),
        ("removed", "approve"),
        ("removed", "escalate"),
        ("removed", "remove"),
    }


def test_every_legal_transition(store: ReviewStore) -> None:
    for i, (state, action) in enumerate(LEGAL):
        cid = f"legal-{i}"
        version = _bring_to(store, cid, state)
        d = _decide(store, cid, action, version, actor="root" if i % 2 else "alice", reason_code="spam", note=f"n{i}")
        assert (d.from_state, d.to_state, d.item_version) == (state, ACTIONS[action], version + 1)
        row = store.item_states("beer").filter(pl.col("content_id") == cid).row(0, named=True)
        assert (row["state"], row["version"]) == (ACTIONS[action], version + 1)


def test_every_illegal_transition_writes_nothing(store: ReviewStore) -> None:
    for i, (state, action) in enumerate(ILLEGAL):
        cid = f"illegal-{i}"
        version = _bring_to(store, cid, state)
        before = store.decisions().height
        with pytest.raises(TransitionError, match=f"cannot {action} beer:{cid}: it is '{state}'"):
            _decide(store, cid, action, version)
        assert store.decisions().height == before
        rows = store.item_states("beer").filter(pl.col("content_id") == cid).rows(named=True)
        assert [(r["state"], r["version"]) for r in rows] == ([] if state == "pending" else [(state, version)])


def test_decisions_are_an_append_only_log_with_provenance(store: ReviewStore) -> None:
    thresholds = {"toxicity": 0.8, "insult": 0.6}
    d1 = _decide(
        store,
        "42",
        "escalate",
        0,
        actor="alice",
        reason_code="harassment",
        note="needs a second look",
        model_id="lexical:alt-profanity-check-1.9.1",
        thresholds_json=thresholds,
        scores_json='{"toxicity": 0.91}',
        now=T0,
    )
    d2 = _decide(
        store,
        "42",
        "remove",
        1,
        actor="bob",
        reason_code="harassment",
        note="confirmed",
        now=(T0 + timedelta(minutes=5)).replace(tzinfo=UTC),
    )
    log = store.decisions()
    assert log.columns == list(DECISION_COLUMNS)
    assert log.height == 2
    newest, oldest = log.row(0, named=True), log.row(1, named=True)
    assert newest["decision_id"] == d2.decision_id and oldest["decision_id"] == d1.decision_id
    assert len(d1.decision_id) == 32 and d1.decision_id != d2.decision_id
    assert (oldest["actor"], oldest["action"], oldest["from_state"], oldest["to_state"], oldest["item_version"]) == (
        "alice",
        "escalate",
        "pending",
        "escalated",
        1,
    )
    assert (newest["actor"], newest["from_state"], newest["to_state"], newest["item_version"]) == (
        "bob",
        "escalated",
        "removed",
        2,
    )
    assert oldest["decided_at"] == T0 and newest["decided_at"] == T0 + timedelta(minutes=5)
    assert oldest["reason_code"] == "harassment" and oldest["note"] == "needs a second look"
    assert oldest["model_id"] == "lexical:alt-profanity-check-1.9.1"
    assert json.loads(oldest["thresholds_json"]) == thresholds
    assert json.loads(oldest["scores_json"]) == {"toxicity": 0.91}
    # filters
    assert store.decisions(actor="bob")["decision_id"].to_list() == [d2.decision_id]
    assert store.decisions(action="escalate")["decision_id"].to_list() == [d1.decision_id]
    assert store.decisions(after_decided_at=T0)["decision_id"].to_list() == [d2.decision_id]
    assert store.decisions(start=T0, end=T0 + timedelta(minutes=1))["decision_id"].to_list() == [d1.decision_id]
    assert store.decisions(source="other").height == 0
    # the first row is unchanged by the second decision (append-only)
    assert store.decisions(actor="alice").row(0, named=True) == oldest


def test_unknown_action_or_reason_is_a_clear_error(store: ReviewStore) -> None:
    with pytest.raises(ValueError, match="unknown action 'delete'"):
        _decide(store, "1", "delete", 0)
    with pytest.raises(ValueError, match="unknown reason code 'rude'"):
        _decide(store, "1", "remove", 0, reason_code="rude")
    assert store.decisions().height == 0


def test_edited_after_approval_goes_back_to_pending(store: ReviewStore) -> None:
    _decide(store, "7", "approve", 0, content_hash="h-original")
    with pytest.raises(TransitionError):
        _decide(store, "7", "remove", 1, content_hash="h-original")
    states = store.item_states()
    row = states.row(0, named=True)
    assert effective_state(row["state"], row["content_hash"], "h-original") == "approved"
    assert effective_state(row["state"], row["content_hash"], "h-edited") == "pending"
    assert effective_state(None, None, "h") == "pending"
    d = _decide(store, "7", "remove", 1, actor="bob", content_hash="h-edited", reason_code="spam")
    assert (d.from_state, d.to_state, d.item_version, d.content_hash) == ("pending", "removed", 2, "h-edited")
    row = store.item_states().row(0, named=True)
    assert (row["state"], row["version"], row["content_hash"]) == ("removed", 2, "h-edited")


# ------------------------------------------------------------------ concurrency


def _race(url: str, content_id: str, action: str, version: int) -> list[object]:
    """Two moderators, two separate stores (engines, connections), released together."""
    stores = [ReviewStore(url, bcrypt_rounds=4) for _ in range(2)]
    for s in stores:
        s.users()  # open a connection before the race
    barrier = threading.Barrier(2)
    results: list[object] = [None, None]

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = stores[i].decide(
                source="beer",
                content_id=content_id,
                action=action,
                actor=("alice", "bob")[i],
                expected_version=version,
                content_hash="h1",
            )
        except Exception as exc:  # noqa: BLE001 - the test inspects what each writer got
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for s in stores:
        s.dispose()
    return results


def test_two_concurrent_writers_one_wins_one_conflicts(store: ReviewStore, store_url: str) -> None:
    for round_, (action, version) in enumerate([("escalate", 0), ("remove", 1)]):
        results = _race(store_url, "race", action, version)
        wins = [r for r in results if isinstance(r, Decision)]
        conflicts = [r for r in results if isinstance(r, ConflictError)]
        assert len(wins) == 1 and len(conflicts) == 1, results
        winner, conflict = wins[0], conflicts[0]
        assert winner.item_version == version + 1
        assert conflict.current_version == version + 1
        assert conflict.current_state == ACTIONS[action]
        assert conflict.last_actor == winner.actor
        assert conflict.last_decided_at == winner.decided_at
        assert f"was changed by {winner.actor}" in str(conflict) and "reload" in str(conflict)
        row = store.item_states().row(0, named=True)
        assert (row["state"], row["version"]) == (ACTIONS[action], version + 1)
        assert store.decisions(content_id="race").height == round_ + 1


def test_stale_version_is_a_conflict_naming_the_last_actor(store: ReviewStore) -> None:
    _decide(store, "9", "escalate", 0, actor="alice", now=T0)
    with pytest.raises(ConflictError) as info:
        _decide(store, "9", "approve", 0, actor="bob")
    assert (info.value.current_state, info.value.current_version, info.value.last_actor) == ("escalated", 1, "alice")
    assert info.value.last_decided_at == T0
    with pytest.raises(ConflictError) as info:
        _decide(store, "never", "approve", 3, actor="bob")
    assert info.value.current_version == 0 and info.value.last_actor is None
    assert store.decisions().height == 1


def test_decide_many_returns_per_item_outcomes(store: ReviewStore) -> None:
    _decide(store, "b2", "approve", 0)
    items = [
        {"source": "beer", "content_id": "b1", "expected_version": 0, "content_hash": "h1", "model_id": "m"},
        {"source": "beer", "content_id": "b2", "expected_version": 0, "content_hash": "h1"},  # stale
        {"source": "beer", "content_id": "b3", "expected_version": 0, "content_hash": "h1"},
    ]
    out = store.decide_many(items, action="remove", actor="bob", reason_code="spam", note="bulk")
    assert [type(o).__name__ for o in out] == ["Decision", "ConflictError", "Decision"]
    assert out[0].model_id == "m" and out[2].reason_code == "spam"
    with pytest.raises(ValueError, match=r"items\[0\] lacks expected_version"):
        store.decide_many([{"source": "beer", "content_id": "x", "content_hash": None}], action="remove", actor="bob")


# ------------------------------------------------------------------ users and auth


def test_passwords_are_bcrypt_hashes_and_authenticate(store: ReviewStore, store_url: str) -> None:
    engine = sa.create_engine(store_url)
    with engine.connect() as conn:
        hashes = dict(conn.execute(sa.text("select username, password_hash from review_users")).all())
    engine.dispose()
    assert all(h.startswith("$2b$04$") and PASSWORD not in h for h in hashes.values())
    assert store.authenticate("alice", PASSWORD).role == "moderator"
    assert store.authenticate("alice", "wrong password!!") is None
    assert store.authenticate("nobody", PASSWORD) is None
    assert store.authenticate("bob", PASSWORD) is None  # bob's is PASSWORD + "!"
    store.set_password("alice", "a whole new passphrase")
    assert store.authenticate("alice", PASSWORD) is None
    assert store.authenticate("alice", "a whole new passphrase").username == "alice"
    with pytest.raises(ValueError, match="at least 12"):
        store.set_password("alice", "short")
    with pytest.raises(ReviewError, match="no user named 'ghost'"):
        store.set_password("ghost", PASSWORD)


def test_deactivated_users_cannot_sign_in_or_act(store: ReviewStore) -> None:
    store.deactivate("bob")
    assert store.authenticate("bob", PASSWORD + "!") is None
    assert "bob" not in store.credentials()["usernames"]
    with pytest.raises(AuthorizationError, match="'bob' is deactivated"):
        _decide(store, "1", "approve", 0, actor="bob")
    assert [u.active for u in store.users() if u.username == "bob"] == [False]
    assert store.decisions().height == 0


def test_roles_manager_may_not_act(store: ReviewStore) -> None:
    with pytest.raises(AuthorizationError, match="role 'manager'"):
        _decide(store, "1", "approve", 0, actor="mia")
    with pytest.raises(AuthorizationError, match="unknown user 'eve'"):
        _decide(store, "1", "approve", 0, actor="eve")
    assert store.decisions().height == 0
    store.set_role("mia", "moderator")
    assert _decide(store, "1", "approve", 0, actor="mia").actor == "mia"
    with pytest.raises(ValueError, match="unknown role 'owner'"):
        store.set_role("mia", "owner")
    with pytest.raises(ReviewError, match="exists already"):
        store.add_user("mia", name="M", email="m@example.org", role="manager", password=PASSWORD)


def test_credentials_match_streamlit_authenticator(store: ReviewStore) -> None:
    creds = store.credentials()
    assert sorted(creds["usernames"]) == ["alice", "bob", "mia", "root"]
    root = creds["usernames"]["root"]
    assert root["roles"] == ["admin"] and root["email"] == "root@example.org" and root["password"].startswith("$2b$")
    import bcrypt

    assert bcrypt.checkpw(PASSWORD.encode(), root["password"].encode())


def test_erase_content_blanks_notes_and_scores_only(store: ReviewStore) -> None:
    _decide(store, "p1", "escalate", 0, note="author's phone is 555-0101", scores_json={"toxicity": 0.9}, model_id="m")
    _decide(store, "p1", "remove", 1, note="doxxing", reason_code="personal_info")
    _decide(store, "p2", "approve", 0, note="fine")
    assert store.erase_content("beer", ["p1", "p1"]) == 2
    assert store.erase_content("beer", ["p1"]) == 0
    log = store.decisions()
    p1 = log.filter(pl.col("content_id") == "p1")
    assert p1["note"].null_count() == 2 and p1["scores_json"].null_count() == 2
    assert sorted(p1["reason_code"].drop_nulls().to_list()) == ["personal_info"]
    assert p1["model_id"].drop_nulls().to_list() == ["m"]
    assert log.filter(pl.col("content_id") == "p2")["note"].to_list() == ["fine"]


def test_from_settings_reads_the_secret_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pulse.settings import load_settings

    monkeypatch.setenv("PULSE_REVIEW_STORE_URL", f"sqlite:///{tmp_path / 'env.sqlite'}")
    settings = load_settings()
    assert "env.sqlite" not in repr(settings)
    s = ReviewStore.from_settings(settings)
    s.create_schema()
    assert (tmp_path / "env.sqlite").exists()
    s.dispose()


# ------------------------------------------------------------------ sign-in lockout


def test_signin_lockout_after_five_failures_within_the_window(store: ReviewStore) -> None:
    minute = timedelta(minutes=1)
    for i in range(4):  # failures 1-4 at T0 .. T0+3 min: counted, not locked
        assert store.record_failed_signin("alice", T0 + i * minute) is None
        assert store.locked_until("alice", T0 + i * minute) is None
    # the 5th, at T0+4 min, locks for 15 minutes from then
    assert store.record_failed_signin("Alice ", T0 + 4 * minute) == T0 + 19 * minute, "same key as typed by the form"
    assert store.locked_until("alice", T0 + 4 * minute) == T0 + 19 * minute
    assert store.locked_until("ALICE", T0 + 19 * minute - timedelta(seconds=1)) == T0 + 19 * minute
    assert store.locked_until("alice", T0 + 19 * minute) is None, "the lock ends after the window"
    assert store.locked_until("bob", T0 + 5 * minute) is None, "other users are not affected"
    assert store.signin_lockouts(T0 + 5 * minute) == {"alice": T0 + 19 * minute}
    # failures while locked do not extend the lock
    assert store.record_failed_signin("alice", T0 + 10 * minute) == T0 + 19 * minute
    # after the lock, counting starts again from 1
    for i in range(4):
        assert store.record_failed_signin("alice", T0 + (20 + i) * minute) is None
    assert store.record_failed_signin("alice", T0 + 24 * minute) == T0 + 39 * minute
    # timezone-aware times are compared in UTC
    aware = (T0 + 30 * minute).replace(tzinfo=UTC)
    assert store.locked_until("alice", aware) == T0 + 39 * minute


def test_signin_failures_outside_the_window_do_not_lock(store: ReviewStore) -> None:
    minute = timedelta(minutes=1)
    for i in range(4):
        store.record_failed_signin("bob", T0 + i * minute)
    # the window opened at T0 with the first failure; at T0+15 min a new one opens: count 1
    assert store.record_failed_signin("bob", T0 + 15 * minute) is None
    for i in range(3):
        assert store.record_failed_signin("bob", T0 + (16 + i) * minute) is None
    assert store.record_failed_signin("bob", T0 + 20 * minute) == T0 + 35 * minute
    # a custom policy: 2 failures within 1 minute lock for 1 minute
    assert store.record_failed_signin("mia", T0, max_failures=2, window=minute) is None
    assert store.record_failed_signin(
        "mia", T0 + timedelta(seconds=59), max_failures=2, window=minute
    ) == T0 + timedelta(seconds=119)
    with pytest.raises(ValueError, match="PULSE_SIGNIN_MAX_FAILURES"):
        store.record_failed_signin("mia", T0, max_failures=0)
    with pytest.raises(ValueError, match="PULSE_SIGNIN_LOCKOUT_MINUTES"):
        store.record_failed_signin("mia", T0, window=timedelta(0))


def test_unknown_usernames_are_counted_and_reset_unlocks(store: ReviewStore) -> None:
    for i in range(5):
        until = store.record_failed_signin("no-such-user", T0 + timedelta(seconds=i))
    assert until == T0 + timedelta(seconds=4, minutes=15)
    assert store.locked_until("no-such-user", T0 + timedelta(minutes=1)) == until
    for i in range(5):
        store.record_failed_signin("root", T0 + timedelta(seconds=i))
    assert store.locked_until("root", T0 + timedelta(minutes=1)) is not None
    assert store.reset_signin_failures("root") is True
    assert store.locked_until("root", T0 + timedelta(minutes=1)) is None
    assert store.reset_signin_failures("root") is False, "nothing left to reset"
    # after a reset (a successful sign-in) the count starts again: 4 more failures do not lock
    for i in range(4):
        assert store.record_failed_signin("root", T0 + timedelta(minutes=2, seconds=i)) is None
    assert store.signin_lockouts(T0 + timedelta(minutes=3)) == {"no-such-user": until}
    assert store.user("no-such-user") is None, "counting a failure creates no account"


def test_signin_failures_from_concurrent_processes_all_count(store_url: str, store: ReviewStore) -> None:
    """Two stores (two engines, as two app processes) record failures for the same new username
    at once; every failure counts (atomic UPDATE; the first-failure INSERT race is retried)."""
    other = ReviewStore(store_url, bcrypt_rounds=4)
    per_writer = 15
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def hammer(s: ReviewStore) -> None:
        try:
            barrier.wait()
            for i in range(per_writer):
                s.record_failed_signin("target", T0 + timedelta(seconds=i), max_failures=1000)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(s,)) for s in (store, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.dispose()
    assert not errors, errors
    with store.engine.connect() as conn:
        failures = conn.execute(
            sa.text("select failures from review_signin_failures where username = 'target'")
        ).scalar()
    assert failures == 2 * per_writer


# ------------------------------------------------------------------ undo and reopen (append-only)


def test_undo_appends_a_row_back_to_the_state_before(store: ReviewStore) -> None:
    _decide(store, "u1", "escalate", 0, actor="alice", now=T0)
    _decide(store, "u1", "remove", 1, actor="bob", reason_code="spam", scores_json='{"toxicity": 0.9}', now=T0)
    # only the moderator who decided, and only within the window
    with pytest.raises(TransitionError, match="the latest decision is bob's; only they may undo it"):
        store.undo(source="beer", content_id="u1", actor="alice", expected_version=2, now=T0 + timedelta(seconds=5))
    with pytest.raises(TransitionError, match="the decision is 31 s old and the undo window is 30 s"):
        store.undo(source="beer", content_id="u1", actor="bob", expected_version=2, now=T0 + timedelta(seconds=31))
    with pytest.raises(ConflictError):
        store.undo(source="beer", content_id="u1", actor="bob", expected_version=1, now=T0 + timedelta(seconds=5))
    assert store.decisions(content_id="u1").height == 2, "refusals write nothing"
    undo = store.undo(source="beer", content_id="u1", actor="bob", expected_version=2, now=T0 + timedelta(seconds=30))
    assert (undo.action, undo.from_state, undo.to_state, undo.item_version) == (UNDO_ACTION, "removed", "escalated", 3)
    assert (undo.content_hash, undo.scores_json) == ("h1", '{"toxicity": 0.9}')
    log = store.decisions(content_id="u1")
    assert log.select("action", "to_state", "item_version").rows() == [
        ("undo", "escalated", 3),
        ("remove", "removed", 2),
        ("escalate", "escalated", 1),
    ], "the removal stays in the log; the undo is a new row"
    row = store.item_states("beer").row(0, named=True)
    assert (row["state"], row["version"], row["updated_by"]) == ("escalated", 3, "bob")
    with pytest.raises(TransitionError, match="already an undo"):
        store.undo(source="beer", content_id="u1", actor="bob", expected_version=3, now=T0 + timedelta(seconds=31))
    # the first decision of an item undone: back to pending, then decided again from version 4
    _decide(store, "u2", "approve", 0, actor="alice", now=T0)
    assert store.undo(source="beer", content_id="u2", actor="alice", expected_version=1, now=T0).to_state == "pending"
    assert _decide(store, "u2", "remove", 2, actor="alice").from_state == "pending"
    with pytest.raises(TransitionError, match="has no decision"):
        store.undo(source="beer", content_id="never", actor="alice", expected_version=0)


def test_reopen_a_final_decision(store: ReviewStore) -> None:
    _decide(store, "r1", "approve", 0, actor="alice", now=T0)
    reopened = _decide(store, "r1", "reopen", 1, actor="bob", note="on second thought", now=T0 + timedelta(days=2))
    assert (reopened.from_state, reopened.to_state, reopened.actor) == ("approved", "pending", "bob")
    assert _decide(store, "r1", "remove", 2, actor="bob", reason_code="harassment").from_state == "pending"
    assert store.decisions(content_id="r1")["action"].to_list() == ["remove", "reopen", "approve"]
