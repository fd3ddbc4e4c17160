"""Perspective API compatibility: attribute map, request/response models, Google-style errors,
and the discovery document.

Wire format: Perspective's ``comments:analyze`` (``commentanalyzer`` v1alpha1, the JSON documented
at developers.perspectiveapi.com "Methods" / "Attributes & Languages" and in its discovery
document). Request::

    {"comment": {"text": str, "type": "PLAIN_TEXT"},
     "requestedAttributes": {"TOXICITY": {"scoreType": "PROBABILITY", "scoreThreshold": 0.5}, ...},
     "languages": ["en"], "doNotStore": true, "spanAnnotations": false, "clientToken": str}

Response::

    {"attributeScores": {"TOXICITY": {"summaryScore": {"value": 0.93, "type": "PROBABILITY"},
                                      "spanScores": [{"begin": 0, "end": 5, "score": {...}}]}},
     "languages": ["en"], "detectedLanguages": ["en"], "clientToken": str}

Attribute map (:data:`ATTRIBUTES`; Perspective's production attributes -> our Detoxify labels):
TOXICITY -> toxicity, SEVERE_TOXICITY -> severe_toxicity, IDENTITY_ATTACK -> identity_attack,
INSULT -> insult, PROFANITY -> obscene, THREAT -> threat, SEXUALLY_EXPLICIT -> sexual_explicit
(the last one is experimental in Perspective). A model that does not score a label (the lexical
model scores ``toxicity`` only) refuses the other attributes with a message naming what it scores.

``summaryScore.value`` is our model's probability for the label (``sigmoid(logit)``), the same
number batch scoring gives; it is not calibrated to Perspective's numbers, so thresholds tuned on
Perspective should be re-checked on the community's own data. ``spanScores`` (``spanAnnotations``)
come from :func:`moderation.explain.occlusion`: one span per word (``begin``/``end`` are Python
character offsets, end exclusive) scored with the drop of the label's probability when that word
form is removed (clipped at 0; words beyond ``max_words`` are not scored and are left out).

Errors follow Google's JSON error format (AIP-193): ``{"error": {"code": HTTP status,
"message": str, "status": canonical code name}}``; messages never echo the comment text or the key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ATTRIBUTES: dict[str, str] = {
    "TOXICITY": "toxicity",
    "SEVERE_TOXICITY": "severe_toxicity",
    "IDENTITY_ATTACK": "identity_attack",
    "INSULT": "insult",
    "PROFANITY": "obscene",
    "THREAT": "threat",
    "SEXUALLY_EXPLICIT": "sexual_explicit",
}
"""Perspective attribute -> our label (``warehouse.canonical.LABELS``)."""

LABEL_ATTRIBUTES: dict[str, str] = {label: attr for attr, label in ATTRIBUTES.items()}
"""Our label -> Perspective attribute."""

API_VERSION = "v1alpha1"
ANALYZE_PATH = f"/{API_VERSION}/comments:analyze"
DISCOVERY_PATH = "/$discovery/rest"


class APIError(Exception):
    """An error answered in Google's format.

    Args:
        code: the HTTP status (400, 403, 413, 429, 503, 504 ...).
        status: Google's canonical code name (``INVALID_ARGUMENT``, ``PERMISSION_DENIED``,
            ``RESOURCE_EXHAUSTED``, ``UNAVAILABLE``, ``DEADLINE_EXCEEDED`` ...).
        message: what was wrong and what is accepted (never the comment text or the key).
        headers: extra response headers (``Retry-After`` for 429).
    """

    def __init__(self, code: int, status: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """``{"error": {"code", "message", "status"}}``."""
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}


def invalid(message: str) -> APIError:
    """A 400 ``INVALID_ARGUMENT`` error."""
    return APIError(400, "INVALID_ARGUMENT", message)


class _Model(BaseModel):
    # Perspective's request has fields we accept and ignore (context, sessionId, communityId ...).
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class TextEntry(_Model):
    """``comment``: the text to score."""

    text: str
    type: Literal["PLAIN_TEXT"] = "PLAIN_TEXT"


class AttributeParameters(_Model):
    """One ``requestedAttributes`` entry."""

    scoreType: Literal["PROBABILITY"] | None = None  # noqa: N815 - Perspective's field names
    scoreThreshold: float | None = Field(None, ge=0.0, le=1.0)  # noqa: N815


class AnalyzeCommentRequest(_Model):
    """The body of ``comments:analyze``."""

    comment: TextEntry
    requestedAttributes: dict[str, AttributeParameters]  # noqa: N815
    languages: list[str] | None = None
    doNotStore: bool = False  # noqa: N815
    spanAnnotations: bool = False  # noqa: N815
    clientToken: str | None = Field(None, max_length=1024)  # noqa: N815


def parse_request(data: Any) -> AnalyzeCommentRequest:
    """Validate a decoded JSON body.

    Raises:
        APIError: 400 naming the first bad field (``comment.text``, ``requestedAttributes`` ...)
            and what it accepts; the offending value is not echoed.
    """
    if not isinstance(data, dict):
        raise invalid("the request body must be a JSON object with comment and requestedAttributes")
    try:
        return AnalyzeCommentRequest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "(body)"
        hint = ""
        if where == "comment.type":
            hint = "; supported: PLAIN_TEXT"
        elif where.endswith("scoreType"):
            hint = "; supported: PROBABILITY"
        raise invalid(f"Invalid JSON payload: {where}: {err['msg']}{hint}") from None


def check_attributes(requested: dict[str, AttributeParameters], labels: tuple[str, ...], model_id: str) -> list[str]:
    """The requested attributes in request order, after checking each is known and scored.

    Args:
        requested: ``requestedAttributes``.
        labels: the labels the active model scores.
        model_id: the model's id (for the message).

    Raises:
        APIError: 400 when none is requested, or one is unknown or not scored by the model
            (the message lists the supported attributes).
    """
    supported = [LABEL_ATTRIBUTES[label] for label in labels if label in LABEL_ATTRIBUTES]
    if not requested:
        raise invalid(f"requestedAttributes is empty; supported attributes: {', '.join(supported)}")
    for name in requested:
        if name not in ATTRIBUTES:
            raise invalid(f"Unknown attribute {name[:64]!r}; supported attributes: {', '.join(supported)}")
        if name not in supported:
            raise invalid(
                f"Attribute {name} is not scored by the model {model_id}; supported attributes: {', '.join(supported)}"
            )
    return list(requested)


def check_languages(languages: list[str], supported: frozenset[str]) -> list[str]:
    """Normalise requested languages (ISO 639-1, lower case, region dropped: ``en-US`` -> ``en``).

    Raises:
        APIError: 400 ``Attribute ... does not support request languages`` naming the supported ones.
    """
    norm = [lang.strip().lower().replace("_", "-").split("-")[0] for lang in languages]
    bad = [lang for lang in norm if lang not in supported]
    if bad:
        raise invalid(
            f"Attributes do not support request languages: {', '.join(sorted(set(bad)))[:200]}; "
            f"supported languages: {', '.join(sorted(supported))}"
        )
    return list(dict.fromkeys(norm))


def score_entry(value: float) -> dict[str, Any]:
    """``{"value": value, "type": "PROBABILITY"}``."""
    return {"value": float(value), "type": "PROBABILITY"}


def build_response(
    attributes: list[str],
    params: dict[str, AttributeParameters],
    scores: dict[str, float],
    *,
    languages: list[str],
    detected: list[str] | None,
    spans: dict[str, list[dict[str, Any]]] | None = None,
    client_token: str | None = None,
) -> dict[str, Any]:
    """The ``AnalyzeCommentResponse``.

    Args:
        attributes: requested attributes (checked).
        params: their parameters (``scoreThreshold``: an attribute scoring below it is left out,
            as Perspective does).
        scores: label -> probability for this text.
        languages: the languages the text was scored as.
        detected: detected languages (None when the request named its languages).
        spans: attribute -> its ``spanScores`` (when ``spanAnnotations``).
        client_token: echoed when given.
    """
    out: dict[str, Any] = {}
    for attr in attributes:
        value = scores[ATTRIBUTES[attr]]
        threshold = params[attr].scoreThreshold
        if threshold is not None and value < threshold:
            continue
        entry: dict[str, Any] = {"summaryScore": score_entry(value)}
        if spans is not None and attr in spans:
            entry["spanScores"] = spans[attr]
        out[attr] = entry
    body: dict[str, Any] = {"attributeScores": out, "languages": languages}
    if detected is not None:
        body["detectedLanguages"] = detected
    if client_token is not None:
        body["clientToken"] = client_token
    return body


def span_scores(explanation: Any) -> list[dict[str, Any]]:
    """``spanScores`` from a :class:`moderation.explain.Explanation`: one per scored word occurrence,
    value = max(0, the label's drop without that word form)."""
    return [
        {"begin": w.start, "end": w.end, "score": score_entry(max(0.0, w.attribution))}
        for w in explanation.words
        if w.attribution is not None
    ]


def discovery_document(root_url: str) -> dict[str, Any]:
    """Perspective's discovery document (Google API Discovery Service format, ``rest``) with
    ``root_url`` (e.g. ``http://127.0.0.1:8000/``) as its root, so Google's client libraries and
    Perspective's samples (``discovery.build("commentanalyzer", "v1alpha1",
    discoveryServiceUrl=...)``) call this server.

    Only ``comments.analyze`` is offered (``suggestscore`` stores training data: not offered).
    """
    root = root_url if root_url.endswith("/") else root_url + "/"

    def ref(name: str) -> dict[str, str]:
        return {"$ref": name}

    score = {
        "id": "Score", "type": "object",
        "properties": {"value": {"type": "number", "format": "float"}, "type": {"type": "string", "enum": ["PROBABILITY"]}},
    }  # fmt: skip
    return {
        "kind": "discovery#restDescription",
        "discoveryVersion": "v1",
        "id": f"commentanalyzer:{API_VERSION}",
        "name": "commentanalyzer",
        "version": API_VERSION,
        "title": "Perspective Comment Analyzer API (Community Pulse, self-hosted)",
        "description": "Scores a comment's toxicity attributes with the community's own model.",
        "protocol": "rest",
        "rootUrl": root,
        "servicePath": "",
        "baseUrl": root,
        "batchPath": "batch",
        "documentationLink": "https://developers.perspectiveapi.com/",
        "parameters": {
            "key": {"type": "string", "location": "query", "description": "API key (pulse api key create NAME)."},
            "alt": {"type": "string", "location": "query", "default": "json", "enum": ["json"]},
            "fields": {"type": "string", "location": "query"},
            "prettyPrint": {"type": "boolean", "location": "query", "default": "true"},
            "quotaUser": {"type": "string", "location": "query"},
            "$.xgafv": {"type": "string", "location": "query", "enum": ["1", "2"]},
        },
        "resources": {
            "comments": {
                "methods": {
                    "analyze": {
                        "id": "commentanalyzer.comments.analyze",
                        "path": f"{API_VERSION}/comments:analyze",
                        "flatPath": f"{API_VERSION}/comments:analyze",
                        "httpMethod": "POST",
                        "parameters": {},
                        "parameterOrder": [],
                        "request": ref("AnalyzeCommentRequest"),
                        "response": ref("AnalyzeCommentResponse"),
                        "description": "Analyzes the provided text and returns attribute scores.",
                    }
                }
            }
        },
        "schemas": {
            "AnalyzeCommentRequest": {
                "id": "AnalyzeCommentRequest",
                "type": "object",
                "properties": {
                    "comment": ref("TextEntry"),
                    "requestedAttributes": {"type": "object", "additionalProperties": ref("AttributeParameters")},
                    "languages": {"type": "array", "items": {"type": "string"}},
                    "doNotStore": {"type": "boolean"},
                    "spanAnnotations": {"type": "boolean"},
                    "clientToken": {"type": "string"},
                },
            },
            "TextEntry": {
                "id": "TextEntry",
                "type": "object",
                "properties": {"text": {"type": "string"}, "type": {"type": "string", "enum": ["PLAIN_TEXT"]}},
            },
            "AttributeParameters": {
                "id": "AttributeParameters",
                "type": "object",
                "properties": {
                    "scoreType": {"type": "string", "enum": ["PROBABILITY"]},
                    "scoreThreshold": {"type": "number", "format": "float"},
                },
            },
            "AnalyzeCommentResponse": {
                "id": "AnalyzeCommentResponse",
                "type": "object",
                "properties": {
                    "attributeScores": {"type": "object", "additionalProperties": ref("AttributeScores")},
                    "languages": {"type": "array", "items": {"type": "string"}},
                    "detectedLanguages": {"type": "array", "items": {"type": "string"}},
                    "clientToken": {"type": "string"},
                },
            },
            "AttributeScores": {
                "id": "AttributeScores",
                "type": "object",
                "properties": {
                    "summaryScore": ref("Score"),
                    "spanScores": {"type": "array", "items": ref("SpanScore")},
                },
            },
            "SpanScore": {
                "id": "SpanScore",
                "type": "object",
                "properties": {
                    "begin": {"type": "integer", "format": "int32"},
                    "end": {"type": "integer", "format": "int32"},
                    "score": ref("Score"),
                },
            },
            "Score": score,
        },
    }
