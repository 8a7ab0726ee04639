"""The OpenAPI document matches the routes, and schemathesis finds no server error anywhere in it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection
from starlette.routing import Route

from admin.conftest import ADMIN, admin_config, bearer
from turnout import Turnout
from turnout.admin import admin_app


async def test_every_route_is_in_the_document_and_back(client: httpx.AsyncClient, turnout: Turnout) -> None:
    spec = (await client.get("/openapi.json")).json()
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    app = admin_app(turnout, env={})
    served = {
        (method, route.path)
        for route in app.routes
        # OFREP's paths are described by the OpenFeature protocol's own document.
        if isinstance(route, Route)
        and route.path not in ("/openapi.json", "/docs")
        and not route.path.startswith("/ofrep/")
        for method in (route.methods or ()) - {"HEAD"}
    }
    assert served == documented
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "/flags/{key}/rules/{rule}/split" in page.text


def _fuzzed_app() -> object:
    # Built at import so schemathesis can read the document; the state lives in a scratch directory.
    scratch = Path(tempfile.mkdtemp(prefix="turnout-admin-fuzz-"))
    config = admin_config(f"sqlite:///{scratch / 'state.db'}", scratch)
    config["flags"]["coordinator"]["rules"][1]["guardrails"] = {"max_error_rate": 0.2}
    config["flags"]["coordinator"]["rules"][1]["rollout"] = {
        "steps": [10, 50, 100],
        "every": "1d",
        "start": "2026-01-01T00:00:00Z",
    }
    return admin_app(Turnout(config, env={}), env={})


schema = schemathesis.openapi.from_asgi("/openapi.json", _fuzzed_app())


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_no_server_error_anywhere(case: schemathesis.Case) -> None:
    case.call_and_validate(
        headers=bearer(ADMIN),
        # Negative cases that drop the bearer token are sent with it here: that check cannot hold.
        excluded_checks=[negative_data_rejection],
    )
