"""The scoring API over HTTP against real ``pulse api serve`` processes (see conftest.py)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from moderation.scorers import load_scorer
from pulse.api.perspective import ATTRIBUTES, LABEL_ATTRIBUTES

TEXTS = [
    "Thanks, that recipe worked great for my stout.",
    "You are a fucking idiot and nobody wants you here.",
    "What temperature should I ferment a saison at?",
    "shut up, moron",
    "This is the dumbest shit I have read all week, you clown.",
    "I'd suggest a longer boil; the hop utilisation goes up a bit.",
    "ok",
    "Go to hell, you pathetic loser, I will find you.",
    "Lager yeast prefers cooler temperatures, around 10 °C, than ale yeast does.",
    "damn this beer is good",
    "a " * 300 + "long text that the token budget has to place in its own batch",
    "Ünïcödé ✓ 🍺 text with emoji",
]


def analyze(base: str, key: str | None, body: dict, **params: str) -> httpx.Response:
    query = {"key": key, **params} if key is not None else params
    return httpx.post(base + "/v1alpha1/comments:analyze", params=query, json=body, timeout=60)


def body_for(text: str, attributes: list[str], **extra: object) -> dict:
    return {"comment": {"text": text}, "requestedAttributes": {a: {} for a in attributes}, "languages": ["en"], **extra}


def batch_scores(scorer_spec: str) -> list[dict[str, float]]:
    return load_scorer(scorer_spec, threads=1).score(TEXTS).to_dicts()


# --- scores ----------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["lexical", "tiny"])
def test_scores_equal_batch_scoring(which: str, request: pytest.FixtureRequest) -> None:
    server = request.getfixturevalue(f"{which}_server")
    spec = "lexical" if which == "lexical" else f"checkpoint:{request.getfixturevalue('tiny_checkpoint')}"
    expected = batch_scores(spec)
    labels = list(expected[0])
    assert (which, len(labels)) in {("lexical", 1), ("tiny", 7)}
    attributes = [LABEL_ATTRIBUTES[label] for label in labels]
    key = server.key()
    for text, want in zip(TEXTS, expected, strict=True):
        r = analyze(server.base, key, body_for(text, attributes, doNotStore=True))
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["languages"] == ["en"] and "detectedLanguages" not in got
        for attr in attributes:
            score = got["attributeScores"][attr]["summaryScore"]
            assert score["type"] == "PROBABILITY"
            assert score["value"] == pytest.approx(want[ATTRIBUTES[attr]], abs=1e-6)
    # the profane texts score high on the lexical model, the benign ones low: real numbers, not constants
    if which == "lexical":
        assert expected[1]["toxicity"] > 0.9 > 0.2 > expected[0]["toxicity"]


def test_64_concurrent_clients_get_their_own_scores(tiny_server, tiny_checkpoint) -> None:
    """64 clients x 3 requests at once: every answer is its own text's batch score, and requests were coalesced."""
    scorer = load_scorer(f"checkpoint:{tiny_checkpoint}", threads=1)
    texts = [f"{TEXTS[i % len(TEXTS)][:200]} (client {i})" for i in range(64 * 3)]
    expected = scorer.score(texts)["insult"].to_list()
    key = tiny_server.key()
    before = httpx.get(tiny_server.base + "/healthz").json()["batching"]

    async def client(i: int, http: httpx.AsyncClient) -> list[tuple[int, float]]:
        out = []
        for j in range(3):
            n = i * 3 + j
            r = await http.post("/v1alpha1/comments:analyze", params={"key": key},
                                json=body_for(texts[n], ["INSULT"]))  # fmt: skip
            assert r.status_code == 200, r.text
            out.append((n, r.json()["attributeScores"]["INSULT"]["summaryScore"]["value"]))
        return out

    async def main() -> list[tuple[int, float]]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=tiny_server.base, limits=limits, timeout=120) as http:
            results = await asyncio.gather(*(client(i, http) for i in range(64)))
        return [x for r in results for x in r]

    got = asyncio.run(main())
    assert len(got) == 192
    for n, value in got:
        assert value == pytest.approx(expected[n], abs=1e-6), n
    after = httpx.get(tiny_server.base + "/healthz").json()["batching"]
    texts_scored = after["texts"] - before["texts"]
    batches = after["batches"] - before["batches"]
    assert texts_scored == 192
    assert batches < 192  # coalesced: fewer engine calls than requests
    assert after["largest_batch"] > 1


def test_span_annotations_come_from_occlusion(lexical_server) -> None:
    from moderation.explain import occlusion

    text = "You are a fucking idiot and nobody wants you here."
    r = analyze(lexical_server.base, lexical_server.key(), body_for(text, ["TOXICITY"], spanAnnotations=True))
    assert r.status_code == 200, r.text
    spans = r.json()["attributeScores"]["TOXICITY"]["spanScores"]
    explanation = occlusion(load_scorer("lexical"), text, "toxicity", use_cache=False)
    assert [(s["begin"], s["end"]) for s in spans] == [(w.start, w.end) for w in explanation.words]
    top = max(spans, key=lambda s: s["score"]["value"])
    assert text[top["begin"] : top["end"]] == "fucking"
    assert top["score"]["value"] == pytest.approx(max(w.attribution for w in explanation.words), abs=1e-9)


def test_score_threshold_client_token_and_detected_language(lexical_server) -> None:
    key = lexical_server.key()
    body = {"comment": {"text": "Thanks a lot, the stout recipe worked great for me."},
            "requestedAttributes": {"TOXICITY": {"scoreThreshold": 0.9}}, "clientToken": "abc-1"}  # fmt: skip
    r = analyze(lexical_server.base, key, body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["attributeScores"] == {}  # below the threshold: left out, as Perspective does
    assert got["clientToken"] == "abc-1"
    assert got["detectedLanguages"] == ["en"] and got["languages"] == ["en"]


# --- keys ------------------------------------------------------------------------------------


def test_keys_are_enforced_stored_hashed_and_revocable(lexical_server) -> None:
    body = body_for("hello there", ["TOXICITY"])
    missing = analyze(lexical_server.base, None, body)
    assert missing.status_code == 403 and missing.json()["error"]["status"] == "PERMISSION_DENIED"
    wrong = analyze(lexical_server.base, "pk_not-a-real-key", body)
    assert (
        wrong.status_code == 400
        and wrong.json()["error"]["message"] == "API key not valid. Please pass a valid API key."
    )
    key = lexical_server.key("to-revoke")
    assert analyze(lexical_server.base, key, body).status_code == 200
    header = httpx.post(lexical_server.base + "/v1alpha1/comments:analyze", headers={"X-Goog-Api-Key": key}, json=body)
    assert header.status_code == 200
    # only the SHA-256 is stored: the key is in neither the database nor its WAL
    raw = b"".join(p.read_bytes() for p in lexical_server.store_path.parent.glob("review.sqlite*"))
    import hashlib

    assert key.encode() not in raw and hashlib.sha256(key.encode()).hexdigest().encode() in raw
    listed = lexical_server.cli("api", "key", "list")
    assert (
        listed.returncode == 0
        and "to-revoke" in listed.stdout
        and key not in listed.stdout
        and key[:8] in listed.stdout
    )
    done = lexical_server.cli("api", "key", "revoke", "to-revoke")
    assert done.returncode == 0, done.stdout
    assert lexical_server.cli("api", "key", "revoke", "to-revoke").returncode == 2
    time.sleep(5.2)  # the server trusts a checked key for 5 s
    refused = analyze(lexical_server.base, key, body)
    assert refused.status_code == 400 and refused.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert lexical_server.cli("api", "key", "create", "to-revoke").returncode == 2  # revoked names stay taken


# --- errors, limits --------------------------------------------------------------------------


def test_errors_are_googles_and_name_what_is_supported(lexical_server, limited_server) -> None:
    key = lexical_server.key()
    unknown = analyze(lexical_server.base, key, body_for("hi", ["FLIRTATION"])).json()["error"]
    assert (
        unknown["code"] == 400
        and unknown["status"] == "INVALID_ARGUMENT"
        and "supported attributes: TOXICITY" in unknown["message"]
    )
    unscored = analyze(lexical_server.base, key, body_for("hi", ["INSULT"])).json()["error"]
    assert "INSULT is not scored" in unscored["message"] and "TOXICITY" in unscored["message"]
    lang = analyze(lexical_server.base, key, {**body_for("hallo", ["TOXICITY"]), "languages": ["de"]}).json()["error"]
    assert lang["code"] == 400 and "de" in lang["message"] and "supported languages: en" in lang["message"]
    german = {"comment": {"text": "Das ist ein wirklich sehr schönes Bier aus Bayern, ich trinke es gern."},
              "requestedAttributes": {"TOXICITY": {}}}  # fmt: skip
    detected = analyze(lexical_server.base, key, german).json()["error"]
    assert "detected language de" in detected["message"] and "supported languages: en" in detected["message"]
    bad_json = httpx.post(lexical_server.base + "/v1alpha1/comments:analyze", params={"key": key}, content=b"{nope")
    assert bad_json.status_code == 400 and bad_json.json()["error"]["status"] == "INVALID_ARGUMENT"
    no_text = analyze(lexical_server.base, key, {"requestedAttributes": {"TOXICITY": {}}}).json()["error"]
    assert no_text["code"] == 400 and "comment" in no_text["message"]
    html = analyze(lexical_server.base, key, {"comment": {"text": "x", "type": "HTML"},
                                              "requestedAttributes": {"TOXICITY": {}}}).json()["error"]  # fmt: skip
    assert "PLAIN_TEXT" in html["message"]
    assert httpx.get(lexical_server.base + "/v2/nothing").json()["error"]["status"] == "NOT_FOUND"

    lkey = limited_server.key()
    too_long = analyze(limited_server.base, lkey, body_for("x" * 101, ["TOXICITY"])).json()["error"]
    assert (
        too_long["code"] == 400 and "101 bytes" in too_long["message"] and "limit is 100 bytes" in too_long["message"]
    )
    multibyte = analyze(limited_server.base, lkey, body_for("é" * 51, ["TOXICITY"])).json()["error"]  # 102 bytes UTF-8
    assert "102 bytes" in multibyte["message"]
    time.sleep(3.1)  # refill the limited server's bucket (1/s, burst 3)
    huge = httpx.post(limited_server.base + "/v1alpha1/comments:analyze", params={"key": lkey},
                      content=json.dumps(body_for("y" * 5000, ["TOXICITY"])).encode())  # fmt: skip
    assert huge.status_code == 413 and "2048 bytes" in huge.json()["error"]["message"]


def test_rate_limit_answers_429_with_retry_after(limited_server) -> None:
    key = limited_server.key("burst")
    body = body_for("hello", ["TOXICITY"])
    codes = [analyze(limited_server.base, key, body) for _ in range(5)]
    assert [r.status_code for r in codes[:3]] == [200, 200, 200]
    limited = [r for r in codes[3:] if r.status_code == 429]
    assert limited, [r.status_code for r in codes]
    error = limited[0].json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED" and "1 requests/s" in error["message"]
    wait = int(limited[0].headers["Retry-After"])
    assert wait == 1
    time.sleep(wait + 0.05)
    assert analyze(limited_server.base, key, body).status_code == 200
    # the bucket is per key: another key is not limited by this one
    assert analyze(limited_server.base, limited_server.key("other"), body).status_code == 200


# --- discovery -------------------------------------------------------------------------------


def test_discovery_document_drives_a_perspective_client(lexical_server) -> None:
    """Perspective's samples: discovery.build(..., discoveryServiceUrl=...) then comments().analyze(body).execute()."""
    from googleapiclient import discovery

    key = lexical_server.key()
    url = lexical_server.base + "/$discovery/rest?version=v1alpha1"
    doc = httpx.get(url).json()
    assert doc["rootUrl"] == lexical_server.base + "/" and doc["name"] == "commentanalyzer"
    method = doc["resources"]["comments"]["methods"]["analyze"]
    # the URL a discovery-driven client builds: rootUrl + servicePath + path, key as a query parameter
    built = doc["rootUrl"] + doc["servicePath"] + method["path"]
    by_hand = httpx.request(method["httpMethod"], built, params={"key": key}, json=body_for(TEXTS[1], ["TOXICITY"]))
    assert by_hand.status_code == 200, by_hand.text

    client = discovery.build("commentanalyzer", "v1alpha1", developerKey=key, discoveryServiceUrl=url,
                             static_discovery=False, cache_discovery=False)  # fmt: skip
    analyze_request = {"comment": {"text": TEXTS[1]}, "requestedAttributes": {"TOXICITY": {}}}
    try:
        response = client.comments().analyze(body=analyze_request).execute()
    finally:
        client.close()
    expected = load_scorer("lexical").score([TEXTS[1]])["toxicity"][0]
    assert response["attributeScores"]["TOXICITY"]["summaryScore"]["value"] == pytest.approx(expected, abs=1e-9)
    assert by_hand.json()["attributeScores"] == response["attributeScores"]
    assert httpx.get(lexical_server.base + "/$discovery/rest?version=v1").status_code == 404


def test_openapi_docs_and_healthz(lexical_server) -> None:
    spec = httpx.get(lexical_server.base + "/openapi.json").json()
    assert "/v1alpha1/comments:analyze" in spec["paths"] and "/webhooks/discourse" in spec["paths"]
    assert httpx.get(lexical_server.base + "/docs").status_code == 200
    health = httpx.get(lexical_server.base + "/healthz").json()
    assert health["model_id"] == "lexical:alt-profanity-check" and health["attributes"] == ["TOXICITY"]


# --- privacy ---------------------------------------------------------------------------------


def test_nothing_received_is_stored_or_logged(lexical_server) -> None:
    marker = "zq7-unique-marker-text-that-must-not-persist"
    key = lexical_server.key()
    for do_not_store in (True, False):
        r = analyze(lexical_server.base, key, body_for(f"{marker} you idiot", ["TOXICITY"], doNotStore=do_not_store,
                                                       spanAnnotations=True))  # fmt: skip
        assert r.status_code == 200
    analyze(lexical_server.base, key, body_for(marker, ["NOPE"]))  # an error path too
    time.sleep(0.5)
    stored = b"".join(p.read_bytes() for p in Path(lexical_server.store_path).parent.glob("review.sqlite*"))
    assert marker.encode() not in stored
    logs = lexical_server.logs()
    assert marker not in logs and key not in logs
    assert "Application startup complete" in logs  # the log is captured: the check above can fail
