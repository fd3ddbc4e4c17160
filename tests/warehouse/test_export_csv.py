"""CSV export defuses spreadsheet formulas (warehouse.export), shared by the dashboards and the CLI."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dashboards.data import to_csv
from moderation.review_store import ReviewStore
from pulse.cli import app
from warehouse.export import FORMULA_START, defuse_cell, to_csv_bytes

RISKY = "=+-@\t\r\uff1d\uff0b\uff0d\uff20"
cells = st.one_of(
    st.text(max_size=30),
    st.builds(lambda c, rest: c + rest, st.sampled_from(list(RISKY)), st.text(max_size=30)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(cells, min_size=1, max_size=8))
def test_every_cell_starting_like_a_formula_is_defused_and_nothing_else_changes(values: list[str]) -> None:
    """Round trip through CSV: risky cells come back with one leading apostrophe, others unchanged."""
    df = pl.DataFrame({"note": values, "tags": [[v, "x"] for v in values]})
    for blob in (to_csv_bytes(df), to_csv(df)):
        back = pl.read_csv(io.BytesIO(blob), schema={"note": pl.String, "tags": pl.String})
        for original, got, tags in zip(values, back["note"].fill_null(""), back["tags"], strict=True):
            assert got == defuse_cell(original)
            assert not got.startswith(FORMULA_START)
            assert tags == defuse_cell(original + "; x")
            if original[:1] in RISKY and original:
                assert got == "'" + original
            else:
                assert got == original


def test_full_width_and_ascii_forms() -> None:
    assert [
        defuse_cell(v) for v in ("=1+1", "\uff1d1+1", "\uff0b1", "\uff0d1", "\uff20SUM(A1)", "\tx", "plain", "'=x")
    ] == ["'=1+1", "'\uff1d1+1", "'\uff0b1", "'\uff0d1", "'\uff20SUM(A1)", "'\tx", "plain", "'=x"]


def test_cli_decisions_csv_defuses_notes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'review.sqlite'}"
    store = ReviewStore(url, bcrypt_rounds=4)
    store.create_schema()
    store.add_user("bob", name="Bob", email="bob@example.org", role="moderator", password="a long enough passphrase")
    notes = ['=HYPERLINK("http://x")', "\uff20SUM(1)", "-2+3", "fine"]
    for i, note in enumerate(notes):
        store.decide(
            source="s",
            content_id=str(i),
            action="remove",
            actor="bob",
            expected_version=0,
            content_hash="h",
            reason_code="spam",
            note=note,
        )
    store.dispose()
    out = tmp_path / "decisions.csv"
    done = CliRunner().invoke(app, ["review", "decisions", "--csv", str(out)], env={"PULSE_REVIEW_STORE_URL": url})
    assert done.exit_code == 0, done.output
    got = pl.read_csv(out).sort("content_id")["note"].to_list()
    assert got == ['\'=HYPERLINK("http://x")', "'\uff20SUM(1)", "'-2+3", "fine"]
    assert oct(out.stat().st_mode & 0o777) == "0o600", "exports are owner-only"
