"""Failure alerts for the DAGs: an Airflow notifier that always logs and optionally posts a webhook.

Used as ``on_failure_callback`` (see ``dags/community_pipeline.py``). The webhook URL is a
secret: it comes from ``PULSE_ALERT_WEBHOOK`` (settings, read when the alert fires), never from
the repository. The body is JSON ``{"text", "dag_id", "task_id", "run_id", "try_number",
"error", "log_url"}`` — the ``text`` key makes it readable in Slack/Mattermost-style incoming
webhooks as is.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from airflow.sdk import BaseNotifier
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

log = logging.getLogger("pulse.alerts")


@retry(
    retry=retry_if_exception_type(httpx.HTTPError),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.5, max=5),
    reraise=True,
)
def post_webhook(url: str, payload: dict[str, Any], *, timeout_s: float = 10.0) -> int:
    """POST ``payload`` as JSON to ``url``; retry twice with exponential backoff.

    Returns:
        The HTTP status code (2xx).

    Raises:
        httpx.HTTPError: when all three attempts fail (connection error or non-2xx status).
    """
    response = httpx.post(url, json=payload, timeout=timeout_s)
    response.raise_for_status()
    return response.status_code


def alert_payload(context: dict[str, Any]) -> dict[str, Any]:
    """The alert for a failed task instance, from its Airflow ``context``."""
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    run_id = context.get("run_id") or getattr(ti, "run_id", "?")
    error = context.get("exception")
    text = f"Community Pulse: task {dag_id}.{task_id} failed in run {run_id}: {error}"
    return {
        "text": text,
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": run_id,
        "try_number": getattr(ti, "try_number", None),
        "error": None if error is None else f"{type(error).__name__}: {error}",
        "log_url": getattr(ti, "log_url", None),
    }


class PulseFailureNotifier(BaseNotifier):
    """Log every task failure at ERROR; also post it to ``webhook_url`` when one is configured.

    Args:
        webhook_url: override the URL; by default ``load_settings().alert_webhook`` at alert time.
    """

    def __init__(self, webhook_url: str | None = None) -> None:
        super().__init__()
        self.webhook_url = webhook_url

    def notify(self, context: dict[str, Any]) -> None:
        payload = alert_payload(context)
        log.error(payload["text"])
        url = self.webhook_url
        if url is None:
            from pulse.settings import load_settings

            secret = load_settings().alert_webhook
            url = secret.get_secret_value() if secret else None
        if url:
            try:
                post_webhook(url, payload)
            except httpx.HTTPError as exc:  # an alert must never mask the task's own failure
                log.error("alert webhook failed after 3 attempts: %s", exc)
