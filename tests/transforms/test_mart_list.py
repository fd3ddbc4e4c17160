"""The one list of marts: derived from the models, followed by the docs, publishing and the grain checks.

* ``transforms.runner`` derives ``MART_NAMES`` (build order) from the SQL files' ``marts.<name>``
  references and the Python models' declared dependencies, and ``MART_GRAINS`` from each model's
  declared grain; a cycle or an unknown mart fails naming them.
* README.md and transforms/README.md list exactly those marts.
* A pipeline run on the demo and on the beer dump: every mart holds its grain (checked in SQL
  and by the marts suite's grain expectations), and the snapshot carries exactly the marts.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from pulse.settings import load_settings
from pulse.steps import SourceSpec, run_pipeline
from transforms import runner
from transforms.runner import MART_GRAINS, MART_NAMES, build_order, mart_dependencies, run_marts, sql_grain
from warehouse.db import connect, migrate
from warehouse.publish import publish_snapshot

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- derivation


def test_dependencies_come_from_references_outside_comments_and_strings():
    deps = mart_dependencies()
    # activity_timeline's header comment mentions marts.activity_heatmap: not a dependency
    assert "marts.activity_heatmap" in runner.model_sql("activity_timeline")
    assert deps["activity_timeline"] == frozenset()
    assert deps["best_time_to_post"] == {"response_times", "response_times_by_slot"}
    assert deps["trending_topics"] == {"thread_topics"}  # thread_topics itself declares none
    assert deps["thread_topics"] == frozenset()
    for name, reads in deps.items():
        assert all(MART_NAMES.index(r) < MART_NAMES.index(name) for r in reads), name


def test_build_order_is_stable_batches_in_name_order():
    assert build_order({"b": set(), "a": set(), "c": {"b"}, "d": {"a", "c"}}) == ("a", "b", "c", "d")
    assert build_order({"z": set(), "y": {"z"}, "x": set()}) == ("x", "z", "y")


def _models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> None:
    for name, body in files.items():
        (tmp_path / f"{name}.sql").write_text(
            f"-- marts.{name}\n-- grain: source\nwith final as ({body})\nselect * from final\n"
        )
    monkeypatch.setattr(runner, "MODELS_DIR", tmp_path)


def test_a_cycle_fails_naming_it(tmp_path, monkeypatch):
    _models(tmp_path, monkeypatch, {"a": "select * from marts.b", "b": "select * from marts.a", "c": "select 1"})
    with pytest.raises(
        ValueError, match=r"^the marts read each other in a cycle: marts\.(a|b) reads marts\.(b|a) reads marts\.\1$"
    ):
        build_order(mart_dependencies())
    with pytest.raises(ValueError, match=r"cycle: marts\.a reads marts\.a$"):
        build_order({"a": {"a"}})


def test_an_unknown_mart_fails_naming_it(tmp_path, monkeypatch):
    _models(tmp_path, monkeypatch, {"a": "select * from marts.nope -- marts.ignored", "b": "select 'marts.quoted'"})
    with pytest.raises(ValueError, match=r"^reference to an unknown mart: marts\.a reads marts\.nope$"):
        mart_dependencies()


def test_grain_header_is_required_once():
    assert sql_grain("-- marts.x\n-- grain: source, day\nwith", "x") == ("source", "day")
    with pytest.raises(ValueError, match="'x' needs exactly one '-- grain: col, col' header line, found 0"):
        sql_grain("-- Grain: source x day\nwith", "x")
    with pytest.raises(ValueError, match="found 2"):
        sql_grain("-- grain: a\n-- grain: b\n", "x")


def test_every_mart_declares_its_grain():
    assert set(MART_GRAINS) == set(MART_NAMES)
    assert MART_GRAINS["engagement_daily"] == ("source", "day")
    assert MART_GRAINS["thread_topics"] == ("source", "root_id", "topic")
    assert MART_GRAINS["moderation_queue"] == ("source", "content_id")


# --------------------------------------------------------------------------- the docs follow the list


def test_transforms_readme_lists_the_derived_marts_in_build_order():
    readme = (REPO / "transforms" / "README.md").read_text(encoding="utf-8")
    sentence = re.search(r"dependency\s+order.*?name order, so the order is stable\):(.*?)\(", readme, re.DOTALL)
    assert sentence, "the build-order sentence of transforms/README.md moved"
    assert re.findall(r"`(\w+)`", sentence.group(1)) == list(MART_NAMES)
    assert sorted(re.findall(r"^## marts\.(\w+)$", readme, re.MULTILINE)) == sorted(MART_NAMES)


def test_readme_lists_the_derived_marts():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Warehouse tables", 1)[1].split("\n###", 1)[0]
    assert sorted(set(re.findall(r"`marts\.(\w+)`", section))) == sorted(MART_NAMES)


# --------------------------------------------------------------------------- the marts schema is the list


def test_the_marts_schema_holds_the_marts_only_and_all_of_them_are_published(tmp_path):
    con = connect(":memory:")
    migrate(con)
    con.execute("create table marts.renamed_long_ago as select 1 as x")
    counts = run_marts(con)
    marts = {
        t
        for (t,) in con.execute(
            "select table_name from information_schema.tables where table_schema = 'marts'"
        ).fetchall()
    }
    assert marts == set(MART_NAMES) == set(counts)
    assert con.execute("select count(*) from ops.keyphrase_cache").fetchall() == [(0,)]  # the memo is not a mart
    published = publish_snapshot(con, tmp_path / "serving.duckdb")
    assert [t for t in published if t.startswith("marts.")] == sorted(f"marts.{n}" for n in MART_NAMES)
    assert not any(t.startswith(("staging.", "ops.keyphrase")) for t in published)
    con.close()


# --------------------------------------------------------------------------- grains on real runs


@pytest.fixture(scope="module", params=["demo", "beer"])
def pipeline_run(request, beer_dump: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp(request.param)
    settings = load_settings(warehouse=tmp / "warehouse.duckdb", serving=tmp / "serving.duckdb", scorer="lexical")
    spec = SourceSpec("demo") if request.param == "demo" else SourceSpec(kind="stackexchange", path=beer_dump)
    summary = run_pipeline(settings, spec)
    return request.param, settings, summary


def test_every_mart_holds_its_grain(pipeline_run):
    name, settings, summary = pipeline_run
    con = duckdb.connect(str(settings.serving), read_only=True)
    try:
        for mart, grain in MART_GRAINS.items():
            cols = ", ".join(grain)
            rows, distinct = con.execute(f"select count(*), count(distinct ({cols})) from marts.{mart}").fetchall()[0]
            assert rows == distinct, f"{name}: marts.{mart} repeats its grain ({cols})"
            # a mart empty on a source would check nothing; the queue is empty on the beer dump
            # only if the lexical scorer flags nothing there
            if mart != "moderation_queue":
                assert rows > 0, f"{name}: marts.{mart} is empty"
        checks = con.execute(
            "select table_name, column_name, success, element_count from quality.validation_results "
            "where run_id = ? and suite = 'marts' and expectation = 'ExpectCompoundColumnsToBeUnique' order by table_name",
            [summary.run_id],
        ).fetchall()
        published = {
            t
            for (t,) in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        }
    finally:
        con.close()
    assert [(t, c) for t, c, _, _ in checks] == sorted((f"marts.{m}", ",".join(g)) for m, g in MART_GRAINS.items())
    assert all(ok for _, _, ok, _ in checks)
    assert published == set(MART_NAMES)
