"""Any body, any context: the OFREP endpoint answers with the protocol's codes, never a server error."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from turnout import Turnout

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
CONTEXTS = st.dictionaries(
    st.sampled_from(["targetingKey", "plan", "company", "country", "id"]) | st.text(max_size=8),
    JSON,
    max_size=5,
)
BODIES = (
    st.builds(lambda context: json.dumps({"context": context}).encode(), CONTEXTS | JSON)
    | st.builds(lambda value: json.dumps(value).encode(), JSON)
    | st.binary(max_size=40)
)

PATHS = [
    "/ofrep/v1/evaluate/flags",
    *(f"/ofrep/v1/evaluate/flags/{key}" for key in ("theme", "page-size", "new-checkout", "layout", "nope")),
]


async def _post(turnout: Turnout, path: str, body: bytes) -> httpx.Response:
    transport = httpx.ASGITransport(app=turnout.ofrep_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        return await http.post(path, content=body, headers={"content-type": "application/json"})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=BODIES,
    path=st.sampled_from(PATHS),
)
def test_every_answer_follows_the_protocol(config: dict[str, Any], body: bytes, path: str) -> None:
    turnout = Turnout({**config, "events": {"enabled": False}})
    response = asyncio.run(_post(turnout, path, body))
    assert response.status_code in (200, 400, 404)
    answer = response.json()
    if response.status_code != 200:
        assert answer["errorCode"] in {
            "PARSE_ERROR",
            "INVALID_CONTEXT",
            "TARGETING_KEY_MISSING",
            "FLAG_NOT_FOUND",
        }
    elif path.endswith("/flags"):
        assert {entry["key"] for entry in answer["flags"]} == set(config["flags"])
    else:
        assert answer["reason"] in {"TARGETING_MATCH", "SPLIT", "DEFAULT", "DISABLED"}
    assert turnout.failures.count() == 0
