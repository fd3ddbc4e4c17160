"""Fixtures for the API tests: real ``pulse api serve`` processes on free ports, keys made with
``pulse api key create``, a fake Discourse that records flag-backs.

Servers (module-independent, one per session):

- ``lexical_server``: the lexical model, generous rate limits, the webhook on, flag-back on to
  ``fake_discourse``;
- ``tiny_server``: a tiny real transformer checkpoint (:func:`moderation.tiny.build_tiny_checkpoint`,
  seven labels), generous limits;
- ``limited_server``: the lexical model with 1 request/s, burst 3, a 100-byte comment cap and a
  2 KiB body cap.

Each server's stdout and stderr go to ``Server.log`` (the no-logging test greps it).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
SECRET = "test-webhook-secret-0123456789"
DISCOURSE_API_KEY = "discourse-api-key-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    base: str
    store_url: str
    store_path: Path
    log: Path
    env: dict[str, str]
    proc: subprocess.Popen
    keys: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """Run ``pulse <args>`` against this server's review store."""
        return subprocess.run([sys.executable, "-m", "pulse.cli", *args], env=self.env, capture_output=True, text=True,
                              timeout=120, cwd=REPO)  # fmt: skip

    def key(self, name: str = "client") -> str:
        if name not in self.keys:
            done = self.cli("api", "key", "create", name)
            assert done.returncode == 0, done.stderr + done.stdout
            self.keys[name] = done.stdout.strip().splitlines()[-1]
        return self.keys[name]

    def logs(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def start_server(folder: Path, **settings: str) -> Server:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    store = folder / "review.sqlite"
    env = {**os.environ, "PULSE_REVIEW_STORE_URL": f"sqlite:///{store}", "PULSE_API_PORT": str(port),
           "PULSE_DISCOURSE_WEBHOOK_SECRET": SECRET, "PULSE_SCORER_THREADS": "1",
           **{f"PULSE_{k.upper()}": v for k, v in settings.items()}}  # fmt: skip
    log = folder / "server.log"
    with log.open("wb") as handle:  # the child keeps its own descriptor
        proc = subprocess.Popen([sys.executable, "-m", "pulse.cli", "api", "serve"], env=env, stdout=handle,
                                stderr=subprocess.STDOUT, cwd=REPO)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return Server(base, f"sqlite:///{store}", store, log, env, proc)
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise RuntimeError(f"server did not answer /healthz in 180 s: {log.read_text()[-3000:]}")


def stop(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.proc.kill()


@dataclass
class FakeDiscourse:
    base: str
    requests: list[dict] = field(default_factory=list)


@pytest.fixture(scope="session")
def fake_discourse() -> Iterator[FakeDiscourse]:
    """A Starlette app under uvicorn (thread) that records ``POST /post_actions``."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    port = free_port()
    fake = FakeDiscourse(f"http://127.0.0.1:{port}")

    async def post_actions(request: Request) -> JSONResponse:
        form = await request.form()
        fake.requests.append({"form": dict(form), "api_key": request.headers.get("api-key"),
                              "api_username": request.headers.get("api-username")})  # fmt: skip
        return JSONResponse({"id": int(form["id"]), "hidden": True})

    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/post_actions", post_actions, methods=["POST"])]),
                                           host="127.0.0.1", port=port, log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield fake
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="session")
def lexical_server(tmp_path_factory: pytest.TempPathFactory, fake_discourse: FakeDiscourse) -> Iterator[Server]:
    server = start_server(
        tmp_path_factory.mktemp("api_lexical"), scorer="lexical", api_rate_per_second="100000", api_rate_burst="100000",
        discourse_source="discourse:forum", discourse_flag_back="true", discourse_url=fake_discourse.base,
        discourse_api_key=DISCOURSE_API_KEY, discourse_api_username="pulse-bot",
    )  # fmt: skip
    yield server
    stop(server)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from moderation.tiny import build_tiny_checkpoint
    from warehouse.canonical import LABELS

    return build_tiny_checkpoint(tmp_path_factory.mktemp("api_tiny") / "tiny", LABELS, model_type=None)


@pytest.fixture(scope="session")
def tiny_server(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("api_tiny_srv"), scorer=f"checkpoint:{tiny_checkpoint}",
                          api_rate_per_second="100000", api_rate_burst="100000")  # fmt: skip
    yield server
    stop(server)


@pytest.fixture(scope="session")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("api_limited"), scorer="lexical", api_rate_per_second="1",
                          api_rate_burst="3", api_max_comment_bytes="100", api_max_request_bytes="2048")  # fmt: skip
    yield server
    stop(server)
