"""The `pulse` CLI as a user runs it: summaries, malformed dumps, bad configuration, docs."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pulse.cli import app
from warehouse.db import connect

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()

BROKEN_POSTS = [
    # no Id
    '  <row PostTypeId="1" CreationDate="2014-01-22T10:00:00.000" Score="1" Body="&lt;p&gt;no id&lt;/p&gt;" Title="No id" Tags="&lt;ale&gt;" />',
    # unparsable date
    '  <row Id="90001" PostTypeId="1" CreationDate="yesterday-ish" Score="1" Body="x" Title="Bad date" Tags="&lt;ale&gt;" />',
    # an entity the XML does not define
    '  <row Id="90002" PostTypeId="1" CreationDate="2014-01-22T10:00:00.000" Score="1" Body="&foo;" Title="Bad entity" Tags="&lt;ale&gt;" />',
]


def _small_dump(beer: Path, out: Path, n_posts: int = 60, n_comments: int = 30, n_votes: int = 200) -> Path:
    """The first rows of the real dump, plus the broken rows above, in ``out``."""
    out.mkdir()
    for name, n, extra in (
        ("Posts.xml", n_posts, BROKEN_POSTS),
        ("Comments.xml", n_comments, []),
        ("Votes.xml", n_votes, []),
    ):
        lines = (beer / name).read_text(encoding="utf-8-sig").splitlines()
        head, rows, tail = lines[:2], lines[2 : 2 + n], lines[-1:]
        (out / name).write_text("\n".join(head + rows + extra + tail) + "\n", encoding="utf-8")
    for name in ("Users.xml", "Tags.xml"):
        shutil.copy(beer / name, out / name)
    return out


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "PULSE_WAREHOUSE": str(tmp_path / "w.duckdb"),
        "PULSE_SERVING": str(tmp_path / "s.duckdb"),
        "PULSE_SCORER": "lexical",
    }


def test_run_on_a_dump_with_broken_rows_quarantines_them_and_goes_on(beer_dump: Path, tmp_path: Path) -> None:
    dump = _small_dump(beer_dump, tmp_path / "dump")
    result = runner.invoke(app, ["run", "--source", "stackexchange", "--path", str(dump)], env=_env(tmp_path))
    assert result.exit_code == 0, result.output
    assert "Published" in result.output and "Expectations: staging" in result.output
    con = connect(tmp_path / "w.duckdb", read_only=True)
    reasons = dict(
        con.execute("select reason, count(*) from raw.quarantine where stream = 'content' group by 1").fetchall()
    )
    read, inserted, skipped, quarantined = con.execute(
        "select read, inserted, skipped, quarantined from ops.stream_counts where stream = 'content'"
    ).fetchall()[0]
    con.close()
    # The cut dump keeps 30 comments, some on posts beyond its first 60: dangling references.
    post_ids = set(re.findall(r'<row Id="(\d+)"', (dump / "Posts.xml").read_text(encoding="utf-8")))
    comment_posts = re.findall(r'PostId="(\d+)"', (dump / "Comments.xml").read_text(encoding="utf-8"))
    dangling = sum(pid not in post_ids for pid in comment_posts)
    assert dangling == 10
    assert reasons == {"missing_id": 1, "bad_timestamp": 1, "malformed_xml": 1, "dangling_reference": dangling}
    assert read == 60 + 3 + 30 and quarantined == 3 + dangling
    assert read == inserted + skipped + quarantined


def test_entity_expansion_bomb_is_rejected_quickly(beer_dump: Path, tmp_path: Path) -> None:
    dump = _small_dump(beer_dump, tmp_path / "dump")
    bomb = (
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
        + "".join(
            f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">' for i in range(1, 10)
        )
        + ']>\n<posts>\n  <row Id="1" PostTypeId="1" CreationDate="2014-01-22T10:00:00.000" Body="&lol9;" />\n</posts>\n'
    )
    (dump / "Posts.xml").write_text(bomb, encoding="utf-8")
    t0 = time.perf_counter()
    result = runner.invoke(app, ["run", "--source", "stackexchange", "--path", str(dump)], env=_env(tmp_path))
    assert time.perf_counter() - t0 < 30  # generous: includes imports; the refusal itself is instant
    assert result.exit_code == 2
    assert "Input rejected" in result.output and "Posts.xml" in result.output
    con = connect(tmp_path / "w.duckdb", read_only=True)
    staged = con.execute("select count(*) from staging.content").fetchall()[0][0]
    status = con.execute("select status from ops.runs").fetchall()[0][0]
    con.close()
    assert staged == 0 and status == "failed"
    assert not (tmp_path / "s.duckdb").exists()


def test_missing_dump_file_names_it(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = runner.invoke(
        app, ["run", "--source", "stackexchange", "--path", str(tmp_path / "empty")], env=_env(tmp_path)
    )
    assert result.exit_code == 2
    assert "Posts.xml" in result.output or "Comments.xml" in result.output


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"PULSE_TIMEZONE": "Mars/Olympus_Mons"}, "PULSE_TIMEZONE"),
        ({"PULSE_SCORER": "gpt"}, "PULSE_SCORER"),
        ({"PULSE_QUARANTINE_MAX_SHARE": "1.5"}, "PULSE_QUARANTINE_MAX_SHARE"),
        ({"PULSE_THRESHOLDS__TOXICITY": "0.99"}, "hold"),
    ],
)
def test_bad_configuration_names_the_key_and_the_fix(tmp_path: Path, env: dict[str, str], key: str) -> None:
    result = runner.invoke(app, ["run", "--source", "demo"], env={**_env(tmp_path), **env})
    assert result.exit_code == 2
    assert "Configuration error" in result.output and key in result.output
    assert not (tmp_path / "w.duckdb").exists()


def test_stackexchange_without_path_explains(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--source", "stackexchange"], env=_env(tmp_path))
    assert result.exit_code == 2 and "--path" in result.output


def test_every_command_is_documented_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands = [c.name or c.callback.__name__ for c in app.registered_commands]
    commands += [  # sub-commands of groups such as `pulse moderation evaluate`
        f"{g.name} {(c.name or c.callback.__name__).replace('_', '-')}"
        for g in app.registered_groups
        for c in g.typer_instance.registered_commands
    ]
    assert commands, "the CLI has commands"
    for name in commands:
        assert re.search(rf"pulse {name}\b", readme), f"`pulse {name}` is not documented in README.md"


def test_runs_says_which_model_scored_and_how_to_build_the_real_one(beer_dump: Path, tmp_path: Path) -> None:
    """``make demo`` ends with ``pulse runs``: on a fresh install (``auto``, no weights, no community
    model beside the warehouse) it names the lexical fallback and ``make model`` (issue #19)."""
    dump = _small_dump(beer_dump, tmp_path / "dump")
    env = {**_env(tmp_path), "PULSE_SCORER": "auto"}
    assert runner.invoke(app, ["run", "--source", "stackexchange", "--path", str(dump)], env=env).exit_code == 0
    result = runner.invoke(app, ["runs", "--limit", "1"], env=env)
    out = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "The latest run scored with lexical:alt-profanity-check (fallback):" in out
    assert "run `make model` to build the community model" in out
