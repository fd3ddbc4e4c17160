"""Generated request bodies never make the API answer 500 (Hypothesis, over HTTP)."""

from __future__ import annotations

import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
ATTRS = st.sampled_from(["TOXICITY", "INSULT", "PROFANITY", "FLIRTATION", "", "toxicity"])
BODIES = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {
            "comment": st.one_of(
                JSON,
                st.fixed_dictionaries(
                    {"text": st.text(max_size=300)}, optional={"type": st.sampled_from(["PLAIN_TEXT", "HTML", 5])}
                ),
            ),
            "requestedAttributes": st.one_of(
                JSON,
                st.dictionaries(
                    ATTRS,
                    st.one_of(
                        JSON,
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "scoreType": st.sampled_from(["PROBABILITY", "STD_DEV", None]),
                                "scoreThreshold": st.floats(allow_nan=False) | st.text(max_size=3),
                            },
                        ),
                    ),
                    max_size=3,
                ),
            ),
        },
        optional={
            "languages": st.one_of(
                JSON, st.lists(st.sampled_from(["en", "EN-us", "de", "", "zz-ZZ", "e"]), max_size=3)
            ),
            "doNotStore": JSON,
            "spanAnnotations": st.booleans(),
            "clientToken": JSON,
        },
    ),
)


def test_generated_bodies_never_500(lexical_server) -> None:
    key = lexical_server.key("fuzz")
    client = httpx.Client(base_url=lexical_server.base, timeout=60)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(body=BODIES)
    def check(body: object) -> None:
        r = client.post("/v1alpha1/comments:analyze", params={"key": key}, content=json.dumps(body).encode())
        assert r.status_code in (200, 400), r.text
        answer = r.json()
        if r.status_code == 400:
            assert answer["error"]["status"] == "INVALID_ARGUMENT" and answer["error"]["message"]
        else:
            for attr, score in answer["attributeScores"].items():
                assert attr == "TOXICITY" and 0.0 <= score["summaryScore"]["value"] <= 1.0

    try:
        check()
        raw = st.binary(max_size=200)

        @settings(max_examples=50, deadline=None)
        @given(data=raw)
        def check_bytes(data: bytes) -> None:
            r = client.post("/v1alpha1/comments:analyze", params={"key": key}, content=data)
            assert r.status_code == 400, r.text

        check_bytes()
    finally:
        client.close()
