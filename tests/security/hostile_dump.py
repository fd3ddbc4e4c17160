"""A small Stack Exchange dump whose titles, tags, comments and display names carry
HTML, JavaScript and Markdown payloads (the hostile-input tests run it through the real pipeline).

The payloads set ``window.__pwned`` or fetch ``http://127.0.0.1:9/...`` (a closed port) if they
ever run or load, so the browser test can tell an inert payload from a live one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

PAYLOADS: tuple[str, ...] = (
    "<script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned = 2">',
    '<a href="javascript:window.__pwned = 3">click me</a>',
    "![tracker](http://127.0.0.1:9/md-track.png)",
    "[phish](javascript:window.__pwned=4)",
    '<img src="http://127.0.0.1:9/pixel.gif" width="1" height="1">',
    "<iframe src=javascript:window.__pwned=5></iframe>",
    "<svg onload=window.__pwned=6>",
)
#: An abusive comment (so the lexical model flags it into the moderation queue) with payloads.
ABUSE = "you are a fucking idiot and a stupid piece of shit "


def _row(**attrs: str) -> str:
    return "  <row " + " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items()) + " />"


def _write(folder: Path, name: str, rows: list[str]) -> None:
    root = name.removesuffix(".xml").lower()
    folder.joinpath(name).write_text(
        f'<?xml version="1.0" encoding="utf-8"?>\n<{root}>\n' + "\n".join(rows) + f"\n</{root}>\n", encoding="utf-8"
    )


def write_hostile_dump(folder: Path, *, threads: int = 40) -> Path:
    """A Stack Exchange dump of ``threads`` questions over ~6 weeks, each with an answer and a comment.

    Titles, display names, tags and comments cycle through :data:`PAYLOADS`; bodies carry them
    HTML-escaped inside the HTML (as the site stores text a member typed).
    """
    folder.mkdir(parents=True, exist_ok=True)
    start = datetime(2024, 1, 1, 9, 0)
    fmt = "%Y-%m-%dT%H:%M:%S.000"
    users = [
        _row(
            Id=str(i),
            Reputation="10",
            CreationDate=start.strftime(fmt),
            DisplayName=f"{PAYLOADS[i % len(PAYLOADS)]} u{i}",
        )
        for i in range(1, 9)
    ]
    posts, comments, votes = [], [], []
    for t in range(threads):
        p = PAYLOADS[t % len(PAYLOADS)]
        at = start + timedelta(hours=25 * t + 3)
        qid, aid = 2 * t + 1, 2 * t + 2
        posts.append(
            _row(
                Id=str(qid),
                PostTypeId="1",
                CreationDate=at.strftime(fmt),
                Score="2",
                ViewCount="5",
                Body=f"<p>{escape(p)} question body {t}</p>",
                OwnerUserId=str(1 + t % 8),
                Title=f"{p} title {t}",
                Tags=f"|ale|{p}|",
            )
        )
        posts.append(
            _row(
                Id=str(aid),
                PostTypeId="2",
                ParentId=str(qid),
                CreationDate=(at + timedelta(hours=2)).strftime(fmt),
                Score="1",
                Body=f"<p>{escape(p)} answer</p>",
                OwnerUserId=str(1 + (t + 1) % 8),
            )
        )
        comments.append(
            _row(
                Id=str(t + 1),
                PostId=str(qid),
                Score="0",
                CreationDate=(at + timedelta(hours=1)).strftime(fmt),
                Text=(ABUSE if t % 5 == 0 else "") + p,
                UserId=str(1 + (t + 2) % 8),
            )
        )
        votes.append(
            _row(Id=str(t + 1), PostId=str(qid), VoteTypeId="2", CreationDate=at.strftime("%Y-%m-%dT00:00:00.000"))
        )
    _write(folder, "Posts.xml", posts)
    _write(folder, "Comments.xml", comments)
    _write(folder, "Votes.xml", votes)
    _write(folder, "Users.xml", users)
    _write(folder, "Tags.xml", [_row(Id="1", TagName="ale", Count=str(threads))])
    return folder
