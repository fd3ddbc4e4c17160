"""Discourse's webhook: verify, de-duplicate, score a post at once, queue it if flagged.

Discourse (admin > API > Webhooks, content type ``application/json``, event "Post is created" /
"Post is updated") POSTs ``{"post": {...}}`` with the headers ``X-Discourse-Event``
(``post_created``, ``post_edited``, ``ping`` ...), ``X-Discourse-Event-Id`` (the web hook
event's id; a redelivery keeps it), ``X-Discourse-Instance`` (the forum's URL) and
``X-Discourse-Event-Signature: sha256=<hex HMAC-SHA256 of the raw body with the webhook's secret>``
(Discourse's ``WebHook#signature``, as in GitHub's webhooks).

Handling, in order: the signature is checked first, over the raw bytes, with
:func:`hmac.compare_digest` (missing or wrong: 403, nothing parsed); a delivery id already
recorded for this instance answers 200 ``duplicate`` without scoring again (the id is recorded in
the same transaction as the queue change, so a delivery that failed half-way is processed when
Discourse retries it); events other than ``post_created``/``post_edited`` answer 200 ``ignored``.

A post is mapped as the Discourse preset of the pipeline maps it
(``warehouse/sources/presets/discourse.toml``): ``content_id`` = the post id, kind ``post`` for
post number 1 (carrying the topic's title) else ``reply``, the text scored = title and ``raw``
joined as :func:`warehouse.canonical.scored_text` joins them, cut at
:data:`moderation.scoring.MAX_SCORED_CHARS`, and the ``content_hash`` of
:func:`warehouse.canonical.content_hash`; so the pipeline later computes the same hash and
scores, and reconciles the live item (:mod:`pulse.api.live_queue`). Private messages, whispers
and small-action notices are skipped, as the preset skips them. The policy is the pipeline's:
:func:`moderation.policy.flag` with the configured thresholds, the language routing rule of
``marts.moderation_queue`` and :func:`moderation.policy.queue_severity`.

Flag-back (``PULSE_DISCOURSE_FLAG_BACK=true``; off by default): a model-flagged post is flagged
on Discourse through its API, ``POST {PULSE_DISCOURSE_URL}/post_actions`` with ``id`` and
``post_action_type_id`` (``PULSE_DISCOURSE_FLAG_TYPE``: inappropriate 4, spam 8,
notify_moderators 7, off_topic 3) and the headers ``Api-Key`` (``PULSE_DISCOURSE_API_KEY``) and
``Api-Username`` (``PULSE_DISCOURSE_API_USERNAME``), so the post is hidden per the community's
flag settings while it waits for review. It runs after the answer (a slow forum does not hold up
the webhook); its outcome is logged with the post id only.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import UTC, datetime
from typing import Any

import polars as pl

from moderation.policy import flag, priority_terms, queue_severity
from moderation.scoring import MAX_SCORED_CHARS
from warehouse.canonical import LABELS, content_hash, scored_text

log = logging.getLogger(__name__)

SCORED_EVENTS = frozenset({"post_created", "post_edited"})
FLAG_TYPES: dict[str, int] = {"off_topic": 3, "inappropriate": 4, "notify_moderators": 7, "spam": 8}
"""Discourse's ``post_action_type_id`` of each flag type (``PostActionType.types``)."""
SKIPPED_POST_TYPES = frozenset({3, 4})
"""Small-action notices (3) and whispers (4): skipped, as the pipeline's preset skips them."""


class WebhookError(Exception):
    """A delivery refused: ``code`` is the HTTP status, the message says why (no payload in it)."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


def verify_signature(secret: str, body: bytes, header: str | None) -> None:
    """Check ``X-Discourse-Event-Signature`` (``sha256=<hex>``) against HMAC-SHA256(secret, body).

    Raises:
        WebhookError: 403 when the header is missing, malformed or does not match.
    """
    if not header or not header.startswith("sha256="):
        raise WebhookError(403, "PERMISSION_DENIED", "missing or malformed X-Discourse-Event-Signature (sha256=<hex>)")
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, header[len("sha256=") :].strip().lower()):
        raise WebhookError(403, "PERMISSION_DENIED", "X-Discourse-Event-Signature does not match the body")


def sign(secret: str, body: bytes) -> str:
    """The header value Discourse sends for ``body`` (tests, the benchmark)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def post_item(payload: Any) -> dict[str, Any] | None:
    """The canonical fields of the payload's post, or None when the pipeline would not read it.

    Returns:
        ``{content_id, kind, thread_id, author_id, author_name, created_at, title, body_text, tags,
        text, content_hash}`` (``thread_id`` only for a first post: a reply's first post id is not
        in the payload; ``text`` = the scored text).

    Raises:
        WebhookError: 400 when ``post.id`` or ``post.raw`` is missing.
    """
    post = payload.get("post") if isinstance(payload, dict) else None
    if not isinstance(post, dict) or post.get("id") is None or not isinstance(post.get("raw"), str):
        raise WebhookError(400, "INVALID_ARGUMENT", "the payload has no post with id and raw (set the webhook's "
                                                    "content type to application/json and select post events)")  # fmt: skip
    if post.get("topic_archetype") == "private_message" or post.get("post_type") in SKIPPED_POST_TYPES:
        return None
    first = post.get("post_number") == 1
    title = post.get("topic_title") if first and isinstance(post.get("topic_title"), str) else None
    kind = "post" if first else "reply"
    body = post["raw"]
    created = _timestamp(post.get("created_at"))
    return {
        "content_id": str(post["id"]), "kind": kind, "thread_id": str(post["id"]) if first else None,
        "author_id": None if post.get("user_id") is None else str(post["user_id"]),
        "author_name": post.get("username") if isinstance(post.get("username"), str) else None,
        "created_at": created, "title": title, "body_text": body,
        "tags": [t for t in (post.get("tags") or []) if isinstance(t, str)] if first else [],
        "text": scored_text(title, body)[:MAX_SCORED_CHARS], "content_hash": content_hash(kind, title, body),
    }  # fmt: skip


def _timestamp(value: Any) -> datetime:
    """An ISO 8601 time as naive UTC (now when missing or unreadable)."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
        except ValueError:
            pass
    return datetime.now(UTC).replace(tzinfo=None)


def queue_row(
    item: dict[str, Any],
    scores: dict[str, float],
    *,
    source: str,
    model_id: str,
    is_fallback: bool,
    thresholds: dict[str, float],
    hold_thresholds: dict[str, float],
    language: str,
    language_confidence: float,
    supported_languages: frozenset[str],
    min_confidence: float,
) -> dict[str, Any] | None:
    """The ``marts.moderation_queue`` row of a scored post, or None when the policy does not queue it.

    Same rules as the mart: flagged when a label is at or above its threshold (severity = max of
    score / threshold), routed when its language is detected with at least ``min_confidence`` and
    the model does not read it; the queue severity is :func:`moderation.policy.queue_severity`.
    No community reports are known yet (0), and the author's prior flags are left null (the
    pipeline computes them over the warehouse); ``priority_score`` is
    :func:`moderation.policy.priority_terms` on what is known at arrival (the model signal,
    halved for a lexical model, which never sets ``hold``).
    """
    frame = flag(pl.DataFrame({k: [float(v)] for k, v in scores.items()}), thresholds, hold_thresholds)
    policy = frame.row(0, named=True)
    routed = language != "und" and language_confidence >= min_confidence and language not in supported_languages
    severity = queue_severity(policy["severity"] if policy["flagged"] else None, 0, 0, routed)
    if severity is None:
        return None
    reasons = (["model_flag"] if policy["flagged"] else []) + (["language_not_supported"] if routed else [])
    lexical = model_id.startswith("lexical:")  # a fallback model never holds (as in the mart)
    row: dict[str, Any] = {
        "source": source, "content_id": item["content_id"], "kind": item["kind"], "thread_id": item["thread_id"],
        "parent_id": None, "author_id": item["author_id"], "author_name": item["author_name"],
        "created_at": item["created_at"], "title": item["title"], "body_text": item["body_text"], "tags": item["tags"],
        "model_id": model_id, "content_hash": item["content_hash"], "is_fallback": is_fallback,
        "flagged_labels": list(policy["flagged_labels"]) if policy["flagged"] else [],
        "max_label": policy["max_label"] if policy["flagged"] else None,
        "max_score": policy["max_score"] if policy["flagged"] else None,
        "severity": severity, "hold": bool(policy["hold"]) and not lexical,
        "queue_reasons": reasons, "report_count": 0, "reporter_count": 0, "report_types": [],
        "first_reported_at": None, "language": language, "language_confidence": language_confidence,
        "language_supported": None if language == "und" else language in supported_languages,
        "parent_title": None, "parent_body": None, "review_state": "pending", "review_version": 0,
        "last_actor": None, "last_decided_at": None, "author_prior_flags": None, "author_prior_removals": None,
        "priority": None,
    }  # fmt: skip
    # the mart's priority rule on what is known at arrival: no reports, history or reach yet, age 0
    terms = priority_terms(
        model_severity=policy["severity"] if policy["flagged"] else None, lexical=lexical, language_routed=routed,
        report_count=0, reporter_count=0, prior_flags=0, prior_removals=0, reach=0, age_hours=0.0,
    )  # fmt: skip
    row.update({"reach": 0, "age_hours": 0.0, "priority_score": terms["score"]})
    row.update({f"priority_{k}": terms[k] for k in ("model", "reports", "history", "reach", "age")})
    for label in LABELS:
        row[label] = scores.get(label)
    return row


async def flag_back(client: Any, base_url: str, api_key: str, username: str, post_id: str, flag_type: str) -> int:
    """Flag ``post_id`` on Discourse (``POST /post_actions``); returns the HTTP status (0 on a network error).

    Logs the post id and the status only.
    """
    try:
        response = await client.post(
            base_url.rstrip("/") + "/post_actions",
            data={"id": post_id, "post_action_type_id": FLAG_TYPES[flag_type], "flag_topic": "false"},
            headers={"Api-Key": api_key, "Api-Username": username},
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - network errors come in many types
        log.warning("Discourse flag-back of post %s failed: %s", post_id, type(exc).__name__)
        return 0
    if response.status_code >= 300:
        log.warning("Discourse flag-back of post %s answered HTTP %d", post_id, response.status_code)
    else:
        log.info("flagged post %s on Discourse (%s)", post_id, flag_type)
    return response.status_code
