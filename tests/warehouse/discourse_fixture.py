"""A Discourse-shaped PostgreSQL database filled from the real beer.stackexchange dump (test fixture).

The tables and columns are the subset of Discourse's schema that the ``discourse`` preset reads
(``users``, ``topics``, ``posts``, ``post_actions``, ``tags``, ``topic_tags``, ``topic_views``),
with Discourse's names and types. The dump maps as follows (deterministic):

* questions → ``topics`` (id = the question's id, title, views, tags) + their first post
  (``post_number`` 1, same id);
* answers → replies (id = the answer's id, ``reply_to_post_number`` null: a reply to the topic);
  comments → replies (id = 10,000,000 + the comment's id, ``reply_to_post_number`` = the commented
  post's number); ``post_number`` 2.. in (created_at, id) order within the topic;
* upvotes → likes (``post_action_type_id`` 2; the dump hides voters, so ``user_id`` is null);
* five flags on the five oldest answers: spam (8), off_topic (3), inappropriate (4),
  notify_moderators (7, with its message in a private-message topic) and illegal (10);
* one whisper (``post_type`` 4) in the oldest topic, one private-message topic;
* ``topic_views``: one row per topic, UTC day and member who posted in it that day, plus one
  anonymous (IP only) row.

Edits: ``version`` 2 and ``last_version_at``/``updated_at`` = the dump's LastEditDate.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

COMMENT_ID_OFFSET = 10_000_000
FLAG_ID_OFFSET = 90_000_000
PM_TOPIC_ID = 99_000_001
PM_POST_ID = 99_000_001
WHISPER_POST_ID = 99_000_002
FLAG_TYPES = (8, 3, 4, 7, 10)  # spam, off_topic, inappropriate, notify_moderators, illegal

DDL = """
create table users (
    id integer primary key, username varchar(60) not null, name varchar, email varchar,
    created_at timestamp not null, updated_at timestamp not null
);
create table topics (
    id integer primary key, title varchar not null, category_id integer, user_id integer,
    views integer not null default 0, archetype varchar not null default 'regular',
    created_at timestamp not null, updated_at timestamp not null, deleted_at timestamp
);
create table posts (
    id integer primary key, topic_id integer not null, user_id integer, post_number integer not null,
    raw text not null, cooked text, reply_to_post_number integer, post_type integer not null default 1,
    like_count integer not null default 0, version integer not null default 1,
    last_version_at timestamp not null, hidden boolean not null default false,
    user_deleted boolean not null default false,
    created_at timestamp not null, updated_at timestamp not null, deleted_at timestamp
);
create index idx_posts_updated on posts (updated_at, id);
create table post_actions (
    id integer primary key, post_id integer not null, user_id integer, post_action_type_id integer not null,
    related_post_id integer, created_at timestamp not null, updated_at timestamp not null,
    deleted_at timestamp, agreed_at timestamp, disagreed_at timestamp, deferred_at timestamp
);
create table tags (id integer primary key, name varchar not null);
create table topic_tags (id serial primary key, topic_id integer not null, tag_id integer not null);
create table topic_views (topic_id integer not null, viewed_at date not null, user_id integer, ip_address inet);
"""


@dataclass(frozen=True)
class DiscourseData:
    """The fixture's tables as polars frames (column names = Discourse's)."""

    users: pl.DataFrame
    topics: pl.DataFrame
    posts: pl.DataFrame
    post_actions: pl.DataFrame
    tags: pl.DataFrame
    topic_tags: pl.DataFrame
    topic_views: pl.DataFrame

    def tables(self) -> dict[str, pl.DataFrame]:
        """``{table name: frame}`` in load order."""
        return {
            n: getattr(self, n)
            for n in ("users", "topics", "posts", "post_actions", "tags", "topic_tags", "topic_views")
        }


def _num(col: str) -> pl.Expr:
    return pl.col(col).str.slice(1).cast(pl.Int64)


@functools.cache
def discourse_data(beer_dump: Path) -> DiscourseData:
    """Map the beer dump (read by our Stack Exchange connector) to Discourse's tables."""
    from warehouse.sources.stackexchange import extract_stackexchange

    ex = extract_stackexchange(beer_dump, now=datetime(2026, 1, 1))
    users = ex.users.select(
        pl.col("user_id").cast(pl.Int64).alias("id"),
        pl.col("display_name").fill_null("anonymous").str.slice(0, 60).alias("username"),
        pl.lit(None, pl.String).alias("name"),
        pl.lit(None, pl.String).alias("email"),
        pl.col("created_at"),
        pl.col("created_at").alias("updated_at"),
    )
    c = ex.content
    questions = c.filter(pl.col("kind") == "question")
    topics = questions.select(
        _num("content_id").alias("id"),
        pl.col("title").fill_null(""),
        pl.lit(1).alias("category_id"),
        pl.col("author_id").cast(pl.Int64).alias("user_id"),
        pl.col("view_count").fill_null(0).alias("views"),
        pl.lit("regular").alias("archetype"),
        pl.col("created_at"),
        pl.col("created_at").alias("updated_at"),
        pl.lit(None, pl.Datetime("us")).alias("deleted_at"),
    )
    topic_ids = set(topics["id"].to_list())
    rows = (
        c.filter(pl.col("thread_id").is_not_null())
        .with_columns(
            pl.when(pl.col("kind") == "comment")
            .then(pl.col("content_id").str.slice(1).cast(pl.Int64) + COMMENT_ID_OFFSET)
            .otherwise(_num("content_id"))
            .alias("id"),
            _num("thread_id").alias("topic_id"),
        )
        .filter(pl.col("topic_id").is_in(sorted(topic_ids)))
    )
    rows = rows.sort("topic_id", pl.col("kind") != "question", "created_at", "id").with_columns(
        pl.int_range(1, pl.len() + 1).over("topic_id").alias("post_number")
    )
    numbers = rows.select(pl.col("content_id").alias("parent_id"), pl.col("post_number").alias("reply_to_post_number"))
    rows = rows.join(numbers, on="parent_id", how="left").with_columns(
        pl.when(pl.col("kind") == "comment").then(pl.col("reply_to_post_number")).alias("reply_to_post_number")
    )
    upvotes = ex.engagement_events.filter(pl.col("event_type") == "upvote").join(
        rows.select("content_id", pl.col("id").alias("post_id")), on="content_id", how="inner"
    )
    like_counts = upvotes.group_by("post_id").len("like_count")
    updated = pl.coalesce("edited_at", "created_at")
    posts = rows.join(like_counts, left_on="id", right_on="post_id", how="left").select(
        pl.col("id"),
        pl.col("topic_id"),
        pl.col("author_id").cast(pl.Int64).alias("user_id"),
        pl.col("post_number").cast(pl.Int64),
        pl.col("body_text").fill_null("").alias("raw"),
        pl.lit(None, pl.String).alias("cooked"),
        pl.col("reply_to_post_number").cast(pl.Int64),
        pl.lit(1).alias("post_type"),
        pl.col("like_count").fill_null(0).cast(pl.Int64),
        pl.when(pl.col("edited_at").is_not_null()).then(2).otherwise(1).alias("version"),
        updated.alias("last_version_at"),
        pl.lit(False).alias("hidden"),
        pl.lit(False).alias("user_deleted"),
        pl.col("created_at"),
        updated.alias("updated_at"),
        pl.lit(None, pl.Datetime("us")).alias("deleted_at"),
    )
    # A private-message topic (never read by the preset) and a whisper in the oldest topic.
    first_topic = topics.sort("created_at", "id").row(0, named=True)
    t0 = first_topic["created_at"]
    topics = pl.concat(
        [
            topics,
            pl.DataFrame(
                [
                    {
                        **{k: None for k in topics.columns},
                        "id": PM_TOPIC_ID,
                        "title": "Flag: please look at this",
                        "category_id": None,
                        "user_id": first_topic["user_id"],
                        "views": 0,
                        "archetype": "private_message",
                        "created_at": t0,
                        "updated_at": t0,
                    }
                ],
                schema=topics.schema,
            ),
        ]
    )
    last_number = posts.filter(pl.col("topic_id") == first_topic["id"])["post_number"].max()
    extra = pl.DataFrame(
        [
            {
                "id": PM_POST_ID,
                "topic_id": PM_TOPIC_ID,
                "user_id": first_topic["user_id"],
                "post_number": 1,
                "raw": "This answer is an advert for a brewery shop.",
                "post_type": 1,
            },
            {
                "id": WHISPER_POST_ID,
                "topic_id": first_topic["id"],
                "user_id": first_topic["user_id"],
                "post_number": last_number + 1,
                "raw": "Staff note: keep an eye on this thread.",
                "post_type": 4,
            },
        ]
    ).with_columns(
        pl.lit(None, pl.String).alias("cooked"),
        pl.lit(None, pl.Int64).alias("reply_to_post_number"),
        pl.lit(0).alias("like_count"),
        pl.lit(1).alias("version"),
        pl.lit(t0).alias("last_version_at"),
        pl.lit(False).alias("hidden"),
        pl.lit(False).alias("user_deleted"),
        pl.lit(t0).alias("created_at"),
        pl.lit(t0).alias("updated_at"),
        pl.lit(None, pl.Datetime("us")).alias("deleted_at"),
    )
    posts = pl.concat([posts, extra.select(posts.columns).cast(posts.schema)])

    likes = upvotes.select(
        _num("event_id").alias("id"),
        pl.col("post_id"),
        pl.lit(None, pl.Int64).alias("user_id"),
        pl.lit(2).alias("post_action_type_id"),
        pl.lit(None, pl.Int64).alias("related_post_id"),
        pl.col("occurred_at").alias("created_at"),
        pl.col("occurred_at").alias("updated_at"),
    )
    answers = (
        posts.filter((pl.col("post_number") > 1) & (pl.col("id") < COMMENT_ID_OFFSET))
        .sort("created_at", "id")
        .head(len(FLAG_TYPES))
    )
    flags = pl.DataFrame(
        [
            {
                "id": FLAG_ID_OFFSET + i,
                "post_id": a["id"],
                "user_id": first_topic["user_id"],
                "post_action_type_id": t,
                "related_post_id": PM_POST_ID if t == 7 else None,
                "created_at": a["created_at"] + timedelta(hours=1),
                "updated_at": a["created_at"] + timedelta(hours=1),
            }
            for i, (a, t) in enumerate(zip(answers.iter_rows(named=True), FLAG_TYPES, strict=True))
        ],
        schema=likes.schema,
    )
    post_actions = pl.concat([likes, flags]).with_columns(
        *(pl.lit(None, pl.Datetime("us")).alias(c) for c in ("deleted_at", "agreed_at", "disagreed_at", "deferred_at"))
    )

    names = sorted({t for ts in questions["tags"].to_list() for t in ts})
    tag_ids = {n: i + 1 for i, n in enumerate(names)}
    tags = pl.DataFrame({"id": list(tag_ids.values()), "name": names})
    topic_tags = (
        questions.select(_num("content_id").alias("topic_id"), "tags")
        .explode("tags")
        .drop_nulls("tags")
        .select("topic_id", pl.col("tags").replace_strict(tag_ids, return_dtype=pl.Int64).alias("tag_id"))
    )
    regular = posts.filter(pl.col("topic_id") != PM_TOPIC_ID, pl.col("user_id").is_not_null())
    topic_views = (
        regular.select("topic_id", pl.col("created_at").dt.date().alias("viewed_at"), "user_id")
        .unique()
        .sort("topic_id", "viewed_at", "user_id")
        .with_columns(pl.lit(None, pl.String).alias("ip_address"))
    )
    topic_views = pl.concat(
        [
            topic_views,
            pl.DataFrame(
                [{"topic_id": first_topic["id"], "viewed_at": t0.date(), "user_id": None, "ip_address": "192.0.2.7"}],
                schema=topic_views.schema,
            ),
        ]
    )
    return DiscourseData(users, topics, posts, post_actions, tags, topic_tags, topic_views)


def load_discourse(url: str, data: DiscourseData) -> None:
    """Create the Discourse-shaped schema in the database at ``url`` and COPY ``data`` into it."""
    import psycopg

    with psycopg.connect(url) as con:
        con.execute(DDL)
        with con.cursor() as cur:
            for name, df in data.tables().items():
                cols = ", ".join(df.columns)
                with cur.copy(f"copy {name} ({cols}) from stdin") as copy:
                    for row in df.iter_rows():
                        copy.write_row(row)
        con.commit()
