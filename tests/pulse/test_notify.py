"""The DAGs' failure notifier: always logs, posts to a webhook when configured, retries."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest

from pulse.notify import PulseFailureNotifier, alert_payload


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []
    fail_first: int = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append(body)
        status = 500 if len(type(self).received) <= type(self).fail_first else 200
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def webhook():
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Hook
    server.shutdown()
    server.server_close()


def _context(error: Exception) -> dict:
    ti = SimpleNamespace(dag_id="community_pipeline", task_id="load", run_id="manual__1", try_number=3, log_url=None)
    return {"ti": ti, "run_id": "manual__1", "exception": error}


def test_failure_is_logged_and_posted(webhook, caplog) -> None:
    url, hook = webhook
    with caplog.at_level(logging.ERROR, logger="pulse.alerts"):
        PulseFailureNotifier(webhook_url=url)(_context(RuntimeError("disk full")))
    assert "community_pipeline.load failed in run manual__1: disk full" in caplog.text
    assert len(hook.received) == 1
    assert hook.received[0]["task_id"] == "load" and hook.received[0]["error"] == "RuntimeError: disk full"
    assert hook.received[0]["try_number"] == 3


def test_webhook_is_retried_with_backoff(webhook) -> None:
    url, hook = webhook
    hook.fail_first = 2
    try:
        PulseFailureNotifier(webhook_url=url)(_context(ValueError("x")))
    finally:
        hook.fail_first = 0
    assert len(hook.received) == 3  # two 500s, then success


def test_without_webhook_it_only_logs(caplog, monkeypatch) -> None:
    monkeypatch.delenv("PULSE_ALERT_WEBHOOK", raising=False)
    with caplog.at_level(logging.ERROR, logger="pulse.alerts"):
        PulseFailureNotifier()(_context(KeyError("k")))
    assert "failed in run manual__1" in caplog.text
    assert alert_payload(_context(KeyError("k")))["text"].startswith("Community Pulse: task community_pipeline.load")
