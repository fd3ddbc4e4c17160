"""The FastAPI app: Perspective's ``comments:analyze``, its discovery document, ``/healthz`` and
Discourse's webhook (``pulse api serve``; README "Real-time moderation API").

Routes:

- ``POST /v1alpha1/comments:analyze?key=KEY`` (or header ``X-Goog-Api-Key``): Perspective's
  request and response (:mod:`pulse.api.perspective`). Checks, in order: the key (missing: 403
  ``PERMISSION_DENIED``; unknown or revoked: 400 ``INVALID_ARGUMENT`` "API key not valid", as
  Google answers), the key's token bucket (429 ``RESOURCE_EXHAUSTED`` + ``Retry-After``), the
  body size (413 over ``PULSE_API_MAX_REQUEST_BYTES``), the JSON, the attributes, the languages
  and the comment size (400 naming ``PULSE_API_MAX_COMMENT_BYTES``). Scores come from the
  micro-batcher (:mod:`pulse.api.batching`); a full queue answers 503 ``UNAVAILABLE``, a request
  waiting longer than ``PULSE_API_TIMEOUT_SECONDS`` 504 ``DEADLINE_EXCEEDED``.
- ``GET /$discovery/rest?version=v1alpha1``: the discovery document, rooted at this server.
- ``GET /healthz``: model, labels, batching counters (no key needed, no text).
- ``POST /webhooks/discourse``: :mod:`pulse.api.webhook`.
- ``/docs``, ``/openapi.json``: FastAPI's OpenAPI documentation.

Privacy: the API keeps no text. Nothing it receives is logged (the access log, which would carry
``?key=``, is off; errors name fields, never values); texts live in memory only while they are
scored; explanations bypass the explanation cache. ``doNotStore`` is therefore always honoured.
The one exception is the purpose of the webhook: a post it queues for review is stored, with its
text, in the review store's live queue until the pipeline supersedes it (:mod:`pulse.api.live_queue`).
The API never opens the DuckDB warehouse.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pulse.api import perspective as p
from pulse.api.batching import CALL_BUDGETS, MicroBatcher, Overloaded
from pulse.api.keys import KeyStore, TokenBucket, retry_after
from pulse.api.live_queue import LiveQueue
from pulse.api.webhook import SCORED_EVENTS, WebhookError, flag_back, post_item, queue_row, verify_signature

log = logging.getLogger(__name__)

GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE", 429: "RESOURCE_EXHAUSTED",
                 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}  # fmt: skip


@dataclass
class Service:
    """What the routes share: the model, its batchers, keys, limits and the live queue.

    Attributes:
        settings: :class:`pulse.settings.Settings`.
        scorer: the loaded :class:`moderation.scorers.Scorer`.
        batcher: micro-batcher of the scorer; ``languages``: micro-batcher of language detection.
        keys, buckets, live: API keys, per-key token buckets, the live queue (review store).
        supported: languages (ISO 639-1) the model reads.
    """

    settings: Any
    scorer: Any
    batcher: MicroBatcher
    languages: MicroBatcher
    keys: KeyStore
    buckets: TokenBucket
    live: LiveQueue
    supported: frozenset[str]
    http: Any = None
    background: set[asyncio.Task[Any]] = field(default_factory=set)


def _checkpoint_dir(settings: Any) -> Path | None:
    if settings.scorer.startswith("checkpoint:"):
        return Path(settings.scorer.split(":", 1)[1])
    return Path(settings.detoxify_checkpoint) if settings.detoxify_checkpoint else None


def _score_rows(scorer: Any) -> Any:
    def work(texts: list[str]) -> list[dict[str, float]]:
        return scorer.score(texts).to_dicts()

    return work


def _detect_rows(texts: list[str]) -> list[dict[str, Any]]:
    from moderation.language import detect_languages

    return detect_languages(texts).to_dicts()


def build_service(settings: Any, scorer: Any | None = None) -> Service:
    """Load the model (``settings.scorer``, :meth:`Settings.scorer_options`) unless given, open the
    review store's tables and make the batchers (not started).

    Raises:
        moderation.scorers.ScorerUnavailableError / ValueError: the model cannot be loaded.
    """
    from moderation.language import supported_languages
    from moderation.review_store import ReviewStore
    from moderation.scorers import load_scorer

    if scorer is None:
        scorer = load_scorer(settings.scorer, **settings.scorer_options())
    store = ReviewStore.from_settings(settings)
    budget = getattr(scorer, "max_batch_tokens", None)
    batcher = MicroBatcher(
        _score_rows(scorer), max_wait_s=settings.api_batch_wait_ms / 1000, max_texts=settings.score_batch_size * CALL_BUDGETS,
        max_tokens=None if budget is None else budget * CALL_BUDGETS, max_length=getattr(scorer, "max_length", 512),
    )  # fmt: skip
    languages = MicroBatcher(_detect_rows, max_wait_s=settings.api_batch_wait_ms / 1000, max_texts=256)
    return Service(
        settings=settings, scorer=scorer, batcher=batcher, languages=languages, keys=KeyStore(store.engine),
        buckets=TokenBucket(settings.api_rate_per_second, settings.api_rate_burst), live=LiveQueue(store.engine),
        supported=supported_languages(str(scorer.model_id), checkpoint_dir=_checkpoint_dir(settings)),
    )  # fmt: skip


def _contained(route: Any) -> Any:
    """Turn any unexpected exception of ``route`` into a Google-style 500 inside the route, logging
    its type only: an exception left to Starlette would be logged by the server with its message,
    which may quote the request's text."""

    @functools.wraps(route)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await route(*args, **kwargs)
        except (p.APIError, WebhookError, StarletteHTTPException):
            raise
        except Exception as exc:  # noqa: BLE001 - reported as 500 without details
            log.error("internal error in %s: %s", route.__name__, type(exc).__name__)
            raise p.APIError(500, "INTERNAL", "internal error") from None

    return wrapper


def _error(exc: p.APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.code, headers=exc.headers)


async def read_body(request: Request, cap: int, timeout: float) -> bytes:
    """The request body, refusing more than ``cap`` bytes (413) or a body slower than ``timeout`` s (408).

    Raises:
        APIError: 413 ``PAYLOAD_TOO_LARGE`` naming the cap; 408 when the client stalls.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise p.APIError(
            413, "PAYLOAD_TOO_LARGE", f"request body over the limit of {cap} bytes (PULSE_API_MAX_REQUEST_BYTES)"
        )

    async def collect() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise p.APIError(413, "PAYLOAD_TOO_LARGE",
                                 f"request body over the limit of {cap} bytes (PULSE_API_MAX_REQUEST_BYTES)")  # fmt: skip
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        raise p.APIError(408, "DEADLINE_EXCEEDED", f"the request body did not arrive within {timeout:g} s") from None


async def _engine(service: Service, batcher: MicroBatcher, text: str) -> Any:
    """One text through a batcher with the request timeout; Google errors on overload and timeout."""
    timeout = service.settings.api_timeout_seconds
    try:
        return await asyncio.wait_for(batcher.submit(text), timeout)
    except Overloaded as exc:
        raise p.APIError(503, "UNAVAILABLE", f"the server is overloaded ({exc}); retry with backoff") from None
    except TimeoutError:
        raise p.APIError(
            504, "DEADLINE_EXCEEDED", f"scoring took longer than {timeout:g} s (PULSE_API_TIMEOUT_SECONDS)"
        ) from None


def create_app(settings: Any, *, scorer: Any | None = None) -> FastAPI:
    """The ASGI app. The model is loaded, the batchers started and the language detector warmed
    in the app's lifespan (startup), so the first request does not pay for them.

    Args:
        settings: :class:`pulse.settings.Settings` (``api_*``, ``discourse_*``, the scorer settings,
            ``review_store_url``, ``thresholds``).
        scorer: an already loaded scorer (tests, benchmarks); default: load ``settings.scorer``.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import httpx

        service = await asyncio.to_thread(build_service, settings, scorer)
        await service.batcher.start()
        await service.languages.start()
        await service.languages.submit("warm up the language detector once at startup")
        service.http = httpx.AsyncClient(timeout=10.0)
        app.state.service = service
        log.info("scoring API ready: model %s, labels %s", service.scorer.model_id, ", ".join(service.scorer.labels))
        try:
            yield
        finally:
            for task in list(service.background):
                task.cancel()
            await service.http.aclose()
            await service.batcher.stop()
            await service.languages.stop()

    app = FastAPI(
        title="Community Pulse moderation API",
        version=p.API_VERSION,
        description="Perspective-compatible comment scoring with the community's own model, and a Discourse webhook.",
        lifespan=lifespan,
    )

    @app.exception_handler(p.APIError)
    async def _api_error(_request: Request, exc: p.APIError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(WebhookError)
    async def _webhook_error(_request: Request, exc: WebhookError) -> JSONResponse:
        return _error(p.APIError(exc.code, exc.status, exc.message))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(x) for x in err.get("loc", ()))
        return _error(p.invalid(f"{where}: {err.get('msg')}"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = GOOGLE_STATUS.get(exc.status_code, "UNKNOWN")
        return _error(p.APIError(exc.status_code, status, str(exc.detail)))

    @app.exception_handler(Exception)
    async def _internal(_request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s", type(exc).__name__)  # the message may quote input: not logged
        return _error(p.APIError(500, "INTERNAL", "internal error"))

    def service_of(request: Request) -> Service:
        return request.app.state.service

    @app.get("/healthz")
    async def healthz(request: Request) -> dict[str, Any]:
        """Liveness and what the server scores with."""
        service = service_of(request)
        s = service.scorer
        return {
            "status": "ok", "model_id": s.model_id, "is_fallback": bool(s.is_fallback),
            "attributes": [p.LABEL_ATTRIBUTES[label] for label in s.labels], "languages": sorted(service.supported),
            "batching": service.batcher.stats.to_dict(),
        }  # fmt: skip

    @app.get(p.DISCOVERY_PATH)
    async def discovery(request: Request, version: str = p.API_VERSION) -> JSONResponse:
        """Perspective's discovery document with this server as its root URL."""
        if version != p.API_VERSION:
            raise p.APIError(
                404, "NOT_FOUND", f"no discovery document for version {version[:32]!r}; use {p.API_VERSION}"
            )
        return JSONResponse(p.discovery_document(str(request.base_url)))

    @app.post(
        p.ANALYZE_PATH,
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": p.AnalyzeCommentRequest.model_json_schema(ref_template="#/components/schemas/{model}")}}}},
    )  # fmt: skip
    @_contained
    async def analyze(request: Request) -> JSONResponse:
        """Score one comment (Perspective ``comments:analyze``)."""
        service = service_of(request)
        settings_ = service.settings
        key = request.query_params.get("key") or request.headers.get("x-goog-api-key")
        if not key:
            raise p.APIError(403, "PERMISSION_DENIED", "The request is missing a valid API key.")
        name = await asyncio.to_thread(service.keys.check, key)
        if name is None:
            raise p.APIError(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
        wait = service.buckets.take(name)
        if wait > 0:
            raise p.APIError(
                429, "RESOURCE_EXHAUSTED",
                f"rate limit of {settings_.api_rate_per_second:g} requests/s (burst {settings_.api_rate_burst}) "
                "exceeded for this key", headers={"Retry-After": retry_after(wait)},
            )  # fmt: skip
        raw = await read_body(request, settings_.api_max_request_bytes, settings_.api_timeout_seconds)
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise p.invalid("Invalid JSON payload received: the body is not JSON") from None
        req = p.parse_request(data)
        attributes = p.check_attributes(
            req.requestedAttributes, tuple(service.scorer.labels), str(service.scorer.model_id)
        )
        text = req.comment.text
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > settings_.api_max_comment_bytes:
            raise p.invalid(f"Comment text too long: {size} bytes; the limit is {settings_.api_max_comment_bytes} "
                            "bytes of UTF-8 (PULSE_API_MAX_COMMENT_BYTES)")  # fmt: skip
        if not text.strip():
            raise p.invalid("comment.text is empty")
        detected: list[str] | None = None
        if req.languages:
            languages = p.check_languages(req.languages, service.supported)
        else:
            found = await _engine(service, service.languages, text)
            lang = found["language"]
            detected = [] if lang == "und" else [lang]
            if (
                lang != "und"
                and lang not in service.supported
                and found["confidence"] >= settings_.language_min_confidence
            ):
                raise p.invalid(f"Attributes do not support the detected language {lang}; supported languages: "
                                f"{', '.join(sorted(service.supported))} (or name the comment's language in languages)")  # fmt: skip
            languages = [lang] if lang in service.supported else sorted(service.supported)[:1]
        scores = await _engine(service, service.batcher, text)
        spans = None
        if req.spanAnnotations:
            from moderation.explain import occlusion

            spans = {}
            for attr in attributes:
                try:
                    explanation = await asyncio.wait_for(
                        service.batcher.run(lambda a=attr: occlusion(service.scorer, text, p.ATTRIBUTES[a], use_cache=False)),
                        settings_.api_timeout_seconds,
                    )  # fmt: skip
                except TimeoutError:
                    raise p.APIError(504, "DEADLINE_EXCEEDED", "span annotations took too long") from None
                spans[attr] = p.span_scores(explanation)
        return JSONResponse(p.build_response(attributes, req.requestedAttributes, scores, languages=languages,
                                             detected=detected, spans=spans, client_token=req.clientToken))  # fmt: skip

    @app.post("/webhooks/discourse")
    @_contained
    async def discourse(request: Request) -> dict[str, Any]:
        """Discourse's webhook: verify, de-duplicate, score, queue (see :mod:`pulse.api.webhook`)."""
        service = service_of(request)
        s = service.settings
        if s.discourse_webhook_secret is None or not s.discourse_webhook_secret.get_secret_value():
            raise p.APIError(
                503, "FAILED_PRECONDITION", "the Discourse webhook is off: set PULSE_DISCOURSE_WEBHOOK_SECRET"
            )
        raw = await read_body(request, s.api_max_request_bytes, s.api_timeout_seconds)
        verify_signature(
            s.discourse_webhook_secret.get_secret_value(), raw, request.headers.get("x-discourse-event-signature")
        )
        event = request.headers.get("x-discourse-event", "")
        if event == "ping":
            return {"status": "pong"}
        if event not in SCORED_EVENTS:
            return {"status": "ignored", "event": event[:64]}
        event_id = request.headers.get("x-discourse-event-id", "").strip()
        if not event_id or len(event_id) > 100:
            raise p.invalid("missing X-Discourse-Event-Id")
        instance = request.headers.get("x-discourse-instance", "")[:300]
        if await asyncio.to_thread(service.live.seen, instance, event_id):
            return {"status": "duplicate", "event_id": event_id}
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise p.invalid("the webhook body is not JSON") from None
        item = post_item(payload)
        if item is None:
            return {
                "status": "skipped",
                "reason": "private message, whisper or small action (not read by the pipeline)",
            }
        scores, found = await asyncio.gather(
            _engine(service, service.batcher, item["text"]), _engine(service, service.languages, item["text"])
        )
        row = queue_row(
            item, scores, source=s.discourse_source, model_id=str(service.scorer.model_id),
            is_fallback=bool(service.scorer.is_fallback), thresholds=s.thresholds, hold_thresholds=s.hold_thresholds,
            language=found["language"], language_confidence=found["confidence"], supported_languages=service.supported,
            min_confidence=s.language_min_confidence,
        )  # fmt: skip
        recorded = await asyncio.to_thread(
            service.live.record, instance, event_id, event, s.discourse_source, item["content_id"], row
        )
        if not recorded:
            return {"status": "duplicate", "event_id": event_id}
        flagged = row is not None and "model_flag" in row["queue_reasons"]
        if flagged and s.discourse_flag_back and s.discourse_url and s.discourse_api_key is not None:
            task = asyncio.get_running_loop().create_task(flag_back(
                service.http, s.discourse_url, s.discourse_api_key.get_secret_value(), s.discourse_api_username,
                item["content_id"], s.discourse_flag_type,
            ))  # fmt: skip
            service.background.add(task)
            task.add_done_callback(service.background.discard)
        return {
            "status": "queued" if row is not None else "not_queued", "content_id": item["content_id"],
            "flagged": flagged, "severity": None if row is None else row["severity"],
            "queue_reasons": [] if row is None else row["queue_reasons"],
        }  # fmt: skip

    return app


def serve(settings: Any, host: str, port: int) -> None:
    """Run the app under uvicorn until interrupted (access log off: it would log ``?key=``; the
    app's own log lines, model loading and flag-back outcomes, go to stderr at INFO)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore"):  # their INFO lines carry request URLs
        logging.getLogger(noisy).setLevel(logging.WARNING)
    uvicorn.run(
        create_app(settings), host=host, port=port, access_log=False, log_level="info",
        timeout_keep_alive=5, limit_concurrency=2048, server_header=False,
    )  # fmt: skip
