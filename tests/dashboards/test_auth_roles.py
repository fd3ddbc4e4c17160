"""Least privilege, role x page (issue #14): every role opens exactly its pages, and raw quarantine
payloads and moderators' notes reach only the roles allowed to read them (AppTest).

Every role (``moderation.review_store.ROLES``) against every page of ``dashboards.app.PAGES``: the
navigation offers exactly the pages the role may open; on each of them, everything the page put on
screen (text, Markdown, code, tables, captions, messages) is searched for a quarantined payload
(in the restricted snapshot) and for a moderator's private note (in the review store). Payloads
appear on Pipeline health for data engineers and admins and nowhere else; the note appears in the
Audit log for moderators and admins and never for managers or data engineers. The URL of a page a
role lacks is checked in a real browser (tests/browser/test_auth_browser.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from moderation.review_store import ROLES

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
PAYLOAD_MARK = "onerror=alert(1)"  # in every quarantined payload of the hand-made snapshot
NOTE = "PRIVATE-NOTE-h14s: author is the member's ex; handle with care"
USERS = {"moderator": "mod", "manager": "boss", "admin": "admin", "data_engineer": "dana"}
# what each role may open (the specification, written out rather than derived from app.PAGES)
EVERYONE = {"peak_times.py", "best_time.py", "model_quality.py", "pipeline_health.py"}
EXPECTED = {
    "moderator": EVERYONE | {"overview.py", "trending.py", "review_queue.py", "audit_log.py", "moderation_insights.py"},
    "manager": EVERYONE | {"overview.py", "trending.py", "moderation_insights.py"},
    "data_engineer": EVERYONE | {"data_docs.py"},
    "admin": {p.name for p in (APP.parent / "views").glob("*.py")},
}


def _known_pages(at: AppTest) -> set[str]:
    known = set()
    for path in sorted((APP.parent / "views").glob("*.py")):
        try:
            at.switch_page(f"views/{path.name}")
        except ValueError:
            continue
        known.add(path.name)
    return known


def _on_screen(at: AppTest) -> str:
    """Everything the last run put on screen, as one string (tables as CSV)."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        for child in getattr(node, "children", {}).values():
            walk(child)
        value = getattr(node, "value", None)
        if hasattr(value, "to_csv"):
            parts.append(value.to_csv())
        elif isinstance(value, str):
            parts.append(value)
        label = getattr(node, "label", None)
        if isinstance(label, str):
            parts.append(label)

    walk(at._tree)
    return "\n".join(parts)


@pytest.fixture
def store_with_note(fresh_review_store, snapshot):
    """The test accounts plus a data engineer, and one decision carrying :data:`NOTE`."""
    fresh_review_store.add_user(
        "dana", name="Dana Person", email="dana@example.org", role="data_engineer", password="data-engineer-pass-01"
    )
    con = duckdb.connect(str(snapshot.path), read_only=True)
    try:
        source, content_id, content_hash = con.execute(
            "select source, content_id, content_hash from marts.moderation_queue order by priority limit 1"
        ).fetchone()
    finally:
        con.close()
    fresh_review_store.decide(
        source=source,
        content_id=content_id,
        action="remove",
        actor="mod",
        expected_version=0,
        content_hash=content_hash,
        reason_code=None,
        note=NOTE,
    )
    return fresh_review_store


@pytest.mark.parametrize("role", ROLES)
def test_every_role_sees_exactly_its_pages_and_payloads_and_notes_only_where_allowed(
    serve, snapshot, signed_in, store_with_note, role
) -> None:
    serve(snapshot)
    at = signed_in(AppTest.from_file(str(APP), default_timeout=60), USERS[role]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert _known_pages(at) == EXPECTED[role]
    seen: dict[str, str] = {}
    for page in sorted(EXPECTED[role]):
        at.switch_page(f"views/{page}").run()
        assert not at.exception, (page, [e.value for e in at.exception])
        if page == "pipeline_health.py" and "source" in [s.key for s in at.sidebar.selectbox]:
            at.selectbox(key="source").set_value("demo").run()  # the source with quarantined records
        seen[page] = _on_screen(at)
        assert "is not available to your role" not in seen[page], page
    with_payload = sorted(p for p, text in seen.items() if PAYLOAD_MARK in text)
    with_note = sorted(p for p, text in seen.items() if NOTE in text)
    assert with_payload == (["pipeline_health.py"] if role in ("data_engineer", "admin") else [])
    if role in ("moderator", "admin"):  # the audit log shows notes; the queue's item history may too
        assert "audit_log.py" in with_note and set(with_note) <= {"audit_log.py", "review_queue.py"}
    else:
        assert with_note == []
