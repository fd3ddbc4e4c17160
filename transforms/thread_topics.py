"""The Python model ``marts.thread_topics``: the topics of every thread, from tags or keyphrases.

Grain: one row per source x thread root x topic. A *thread root* is a content item whose
``content_id`` equals its ``thread_id`` (an item without ``thread_id`` is its own root).

* **Sources with tags** (at least one root carries a non-empty tag list, as on Stack Exchange
  and the demo forum): a root's topics are its distinct, non-empty tags
  (``topic_origin = 'tag'``). Untagged roots of such a source have no topic.
* **Sources without tags** (no root carries a tag): a root's topics are the keyphrases that
  YAKE extracts from its title and body (``topic_origin = 'keyphrase'``).
  YAKE — Campos et al., "YAKE! Keyword extraction from single documents using multiple local
  features", Information Sciences 509 (2020); package ``yake`` on PyPI. It is unsupervised,
  needs no model download, and is deterministic. Settings: :data:`YAKE_SETTINGS` (English
  stopwords, phrases of one or two words, the three best per root). Phrases are lowercased
  and their whitespace collapsed so that the same phrase from two threads is one topic.

Keyphrase extraction costs about a millisecond per root, so results are memoised in
``ops.keyphrase_cache`` keyed by ``(content_hash, extractor)``: only new or edited roots are
extracted on a run, and entries whose text no longer exists are pruned. YAKE is a pure function
of the text and :data:`YAKE_SETTINGS`, so the memo never changes a result: the same staging
gives the same ``marts.thread_topics``. The memo is pipeline state, not a mart: it lives in
``ops`` because every table of the ``marts`` schema is published, and the memo keeps the
keyphrases of texts that have since been hidden or removed.

The runner reads :data:`GRAIN` and :data:`DEPENDS_ON` (this model reads no mart) as it reads
the ``-- grain:`` header and the ``marts.<name>`` references of a SQL model.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re

import duckdb
import polars as pl

from warehouse.db import frame

log = logging.getLogger(__name__)

#: Keyword arguments of ``yake.KeywordExtractor`` (language, longest phrase in words, phrases
#: kept per root, de-duplication threshold).
YAKE_SETTINGS: dict[str, object] = {"lan": "en", "n": 2, "top": 3, "dedup_lim": 0.9}

#: The columns one row of ``marts.thread_topics`` is unique on.
GRAIN: tuple[str, ...] = ("source", "root_id", "topic")

#: The marts this model reads (built before it): none, it reads staging only.
DEPENDS_ON: tuple[str, ...] = ()

#: Characters of a root's body given to YAKE (after the title); long bodies add little.
BODY_CHARS = 2000

_SPACES = re.compile(r"\s+")


def extractor_id() -> str:
    """The cache key of the extractor: package version plus settings, e.g. ``yake-0.7.3:lan=en,n=2,top=3,dedup_lim=0.9``."""
    settings = ",".join(f"{k}={v}" for k, v in YAKE_SETTINGS.items())
    return f"yake-{importlib.metadata.version('yake')}:{settings}"


def normalise_phrase(phrase: str) -> str:
    """Lowercase ``phrase`` and collapse runs of whitespace to one space (``' Citra  Hops'`` -> ``'citra hops'``)."""
    return _SPACES.sub(" ", phrase).strip().lower()


def extract_keyphrases(texts: list[str]) -> list[list[str]]:
    """YAKE keyphrases for each text, best first, normalised and de-duplicated.

    Args:
        texts: one document per entry (title and body joined).

    Returns:
        One list per text, at most ``YAKE_SETTINGS["top"]`` phrases each; ``[]`` for an empty
        text or one YAKE finds nothing in.
    """
    import yake  # imported here: only sources without tags need it

    extractor = yake.KeywordExtractor(**YAKE_SETTINGS)
    out: list[list[str]] = []
    for text in texts:
        phrases: list[str] = []
        if text and text.strip():
            for phrase, _score in extractor.extract_keywords(text):
                norm = normalise_phrase(phrase)
                if norm and norm not in phrases:
                    phrases.append(norm)
        out.append(phrases)
    return out


_CACHE_DDL = """
create table if not exists ops.keyphrase_cache (
    content_hash varchar not null,
    extractor varchar not null,
    keyphrases varchar[] not null,
    primary key (content_hash, extractor)
)
"""

_ROOTS = """
roots as (
    select source, content_id, content_hash, title, body_text, tags
    from staging.live_content  -- deleted, hidden and moderator-removed threads drop out
    where coalesce(thread_id, content_id) = content_id
        and (source, content_id) in (select source, root_id from pulse_scope_roots)  -- @partition
),
untagged_sources as (
    select source
    from ({sources})
    where source not in (select source from roots where len(tags) > 0)
)
"""

# A full build: a source is untagged when none of its roots carries a tag.
_ALL_SOURCES = "select distinct source from roots"

# An incremental build reads only the roots in scope: a source is untagged when no root in
# scope carries a tag and no other root has a tag topic in the mart (a root out of scope is
# unchanged, and has tag rows exactly when it carries a tag and its source has tags).
_SCOPED_SOURCES = """
    select distinct source from roots
    except
    select distinct source from marts.thread_topics
    where topic_origin = 'tag' and (source, root_id) not in (select source, root_id from pulse_scope_roots)
"""

_MODEL = f"""
with
{_ROOTS.strip()},
tag_topics as (
    select source, content_id as root_id, topic, 'tag' as topic_origin
    from (
        select source, content_id, unnest(list_distinct(tags)) as topic
        from roots
        where source not in (select source from untagged_sources) and len(tags) > 0
    )
    where topic <> ''
),
keyphrase_topics as (
    select source, root_id, topic, 'keyphrase' as topic_origin
    from (
        select roots.source, roots.content_id as root_id, unnest(cache.keyphrases) as topic
        from roots
        inner join untagged_sources using (source)
        inner join ops.keyphrase_cache as cache
            on cache.content_hash = roots.content_hash and cache.extractor = $extractor
    )
    where topic <> ''
),
final as (
    select distinct source, root_id, topic, topic_origin from tag_topics
    union all
    select distinct source, root_id, topic, topic_origin from keyphrase_topics
    order by source, root_id, topic
)
select * from final
"""


def _sql(template: str, *, full: bool) -> str:
    from transforms.runner import full_build_sql  # the runner imports this module

    sql = template.replace("{sources}", _ALL_SOURCES if full else _SCOPED_SOURCES)
    return full_build_sql(sql) if full else sql


def build_thread_topics(con: duckdb.DuckDBPyConnection, *, full: bool = True) -> int:
    """(Re)build ``marts.thread_topics`` from ``staging.live_content``; return its row count.

    Runs inside the caller's transaction (the runner's), so it commits or rolls back with the
    SQL marts. Extracts keyphrases only for roots of sources without tags whose text is not in
    ``ops.keyphrase_cache`` yet; a full build then prunes cache entries of texts no longer in
    staging (an erasure changes the build fingerprint, so it always prunes).

    With ``full=False`` only the rows of the roots in ``pulse_scope_roots`` (the runner's scope:
    roots whose own row changed) are replaced. A source that gains its first tag or loses its
    last changes every root's topics: the runner sees its ``topic_origin`` change and calls a
    full build.

    Columns: ``source`` (varchar), ``root_id`` (varchar, the thread root's content_id),
    ``topic`` (varchar: a tag, or a lowercased keyphrase), ``topic_origin`` (``'tag'`` or
    ``'keyphrase'``).
    """
    extractor = extractor_id()
    con.execute(_CACHE_DDL)
    pending = frame(
        con,
        f"""
        with {_sql(_ROOTS, full=full)}
        select distinct roots.content_hash,
            coalesce(roots.title, '') || '. ' || left(coalesce(roots.body_text, ''), {BODY_CHARS}) as text
        from roots
        inner join untagged_sources using (source)
        where not exists (
            select 1 from ops.keyphrase_cache as cache
            where cache.content_hash = roots.content_hash and cache.extractor = ?
        )
        order by roots.content_hash
        """,
        [extractor],
    )
    if pending.height:
        phrases = extract_keyphrases(pending["text"].to_list())
        memo = pl.DataFrame(
            {
                "content_hash": pending["content_hash"],
                "extractor": [extractor] * pending.height,
                "keyphrases": phrases,
            },
            schema={"content_hash": pl.String, "extractor": pl.String, "keyphrases": pl.List(pl.String)},
        )
        con.register("_keyphrase_memo", memo)
        try:
            con.execute("insert into ops.keyphrase_cache by name select * from _keyphrase_memo")
        finally:
            con.unregister("_keyphrase_memo")
        log.info("keyphrases extracted for %d thread roots (%s)", pending.height, extractor)
    if full:
        con.execute(
            "delete from ops.keyphrase_cache where content_hash not in (select content_hash from staging.content)"
        )
        con.execute(
            f"create or replace table marts.thread_topics as\n{_sql(_MODEL, full=True)}", {"extractor": extractor}
        )
    else:
        con.execute(
            "delete from marts.thread_topics where (source, root_id) in (select source, root_id from pulse_scope_roots)"
        )
        con.execute(f"insert into marts.thread_topics by name\n{_sql(_MODEL, full=False)}", {"extractor": extractor})
    return int(con.execute("select count(*) from marts.thread_topics").fetchall()[0][0])
