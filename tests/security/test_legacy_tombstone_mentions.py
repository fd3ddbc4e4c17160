"""Tombstones from before migration 012 get mention traces at the next load that carries the member (#14).

Such a tombstone has no record of the erased member's handles. The test erases a member, then
blanks the tombstone's traces as a pre-012 erasure left them, compacts the file (the name's bytes
leave it), and re-loads an extract whose user row still carries the member's display name and
whose other members' posts @-mention them. Hypothesis picks the names (spaces, accents, CJK,
digits, underscores, upper case) and the way they are mentioned. Afterwards: every mention is the
pseudonym, the tombstone holds keyed traces (never the name), the member's row is dropped, and
the warehouse file's bytes hold neither the name nor a mention of it.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warehouse.canonical import QUARANTINE_SCHEMA, SCHEMAS, Extract, StreamCounts, content_hash
from warehouse.db import open_warehouse
from warehouse.load import land
from warehouse.privacy import compact_database, erase_user, scan_files, warehouse_pseudonym

SOURCE = "forum"
letters = st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéøßЖ漢字0123456789_")
names = st.tuples(st.text(letters, min_size=6, max_size=12), st.none() | st.text(letters, min_size=1, max_size=8)).map(
    lambda t: t[0] if t[1] is None else f"{t[0]} {t[1]}"
)  # "First" or "First Last"


def _extract(user_name: str, bodies: list[str]) -> Extract:
    users = pl.DataFrame(
        [{"source": SOURCE, "user_id": "u1", "display_name": user_name, "created_at": None, "reputation": 1}],
        schema=SCHEMAS["users"],
    )
    content = pl.DataFrame(
        [
            {c: None for c in SCHEMAS["content"]}
            | {"source": SOURCE, "content_id": f"c{i}", "kind": "post", "thread_id": "c0", "author_id": "u2",
               "body_text": b, "content_hash": content_hash("post", None, b)}
            for i, b in enumerate(bodies)
        ],
        schema=SCHEMAS["content"],
    )  # fmt: skip
    counts = {s: StreamCounts(read=n, emitted=n) for s, n in (("users", 1), ("content", len(bodies)), ("engagement_events", 0))}  # fmt: skip
    return Extract(
        source=SOURCE,
        users=users,
        content=content,
        engagement_events=pl.DataFrame(schema=SCHEMAS["engagement_events"]),
        quarantine=pl.DataFrame(schema=QUARANTINE_SCHEMA),
        counts=counts,
    )


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names, upper=st.booleans())
def test_a_legacy_tombstone_gets_traces_from_the_reloads_user_row(tmp_path: Path, name: str, upper: bool) -> None:
    wh = tmp_path / f"w-{abs(hash((name, upper)))}.duckdb"
    handle = name.replace(" ", "")  # Stack Exchange's @-mention form
    # as typed by others, in any case (unless case mapping changes the length, as for ß)
    said = handle.upper() if upper and handle.upper().lower() == handle.lower() else handle
    bodies = [f"thanks @{said}!", f"@{said}, see @{said}.", f"cc @{name}", "no mention here"]
    with open_warehouse(wh) as con:
        con.execute(f"insert into staging.users (source, user_id, display_name) values ('{SOURCE}', 'u1', ?)", [name])
        erase_user(con, SOURCE, "u1")
        con.execute("update ops.tombstones set mention_hashes = null, mention_handle = null")  # as before 012
        pseudonym = warehouse_pseudonym(con, SOURCE, "u1")
    compact_database(wh)
    with open_warehouse(wh) as con:
        ex = _extract(name, bodies)
        land(con, ex, "reload")
        got = [r[0] for r in con.execute("select body_text from raw.content order by content_id").fetchall()]
        hashes, stored_handle = con.execute("select mention_hashes, mention_handle from ops.tombstones").fetchone()
        users_left = con.execute("select count(*) from raw.users").fetchone()[0]
        con.execute("checkpoint")
    p = f"@{pseudonym}"
    assert got == [f"thanks {p}!", f"{p}, see {p}.", f"cc {p}", "no mention here"]
    assert len(hashes) == (1 if " " not in name else 2) and stored_handle == pseudonym
    assert all(name.lower() not in h and handle.lower() not in h for h in hashes)  # keyed traces, not the name
    assert users_left == 0 and ex.counts["users"].skipped == 1  # the member's row is dropped as before
    assert all(found == [] for found in scan_files([wh], [f"@{said}", f"@{name}", name]).values())
