"""Real OpenFeature clients against the OFREP app served on loopback: the Python SDK and Node's.

Both must see, for every user, the variant the Python app decides in-process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from turnout import RoutingContext, Turnout
from turnout.events import MemorySink

NODE_PACKAGES = ["@openfeature/ofrep-provider@0.1.3", "@openfeature/server-sdk@1.23.0"]


@pytest.fixture
def openfeature_api() -> Iterator[object]:
    from openfeature import api

    yield api
    api.shutdown()
    api.clear_providers()


async def test_python_sdk_with_the_ofrep_provider(
    served: Any, turnout: Turnout, sink: MemorySink, users: list[str], openfeature_api: object
) -> None:
    from openfeature import api
    from openfeature.contrib.provider.ofrep import OFREPProvider
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.exception import ErrorCode
    from openfeature.flag_evaluation import Reason

    api.set_provider(OFREPProvider(served.url))
    client = api.get_client()
    for user in users:
        context = EvaluationContext(user, {"plan": "free"})
        theme = client.get_string_details("theme", "none", context)
        assert theme.variant == turnout.decide("theme", RoutingContext(user, {"plan": "free"})).variant
        assert (theme.value, theme.reason) == (theme.variant, Reason.SPLIT)
        checkout = client.get_boolean_details("new-checkout", False, context)
        assert checkout.value is (checkout.variant == "on")
    pro = EvaluationContext("user-1", {"plan": "pro"})
    assert client.get_boolean_details("new-checkout", False, pro).reason == Reason.TARGETING_MATCH
    assert client.get_integer_value("page-size", 0, pro) == 10
    # Every user's value is a float, the integer 1 included: the client's type check passes.
    samples = {
        client.get_float_details("sampling", 0.0, EvaluationContext(user)).value for user in users[:50]
    }
    assert samples == {0.25, 1.0}
    layout = client.get_object_details("layout", {}, pro)
    assert (layout.value, layout.reason) == ({"columns": 1}, Reason.DISABLED)
    assert client.get_string_details("coordinator", "", pro).flag_metadata["engine"] in ("legacy", "workflow")
    missing = client.get_string_details("no-such-flag", "fallback", pro)
    assert (missing.value, missing.error_code) == ("fallback", ErrorCode.FLAG_NOT_FOUND)
    keyless = client.get_string_details("theme", "fallback", EvaluationContext(None, {"plan": "pro"}))
    assert (keyless.value, keyless.error_code) == ("fallback", ErrorCode.TARGETING_KEY_MISSING)
    mismatch = client.get_integer_details("theme", 0, pro)
    assert (mismatch.value, mismatch.error_code) == (0, ErrorCode.TYPE_MISMATCH)

    await turnout.events.stop()
    exposed = {
        e.distinct_id for e in sink.events if e.name == "$exposure" and e.properties["flag"] == "theme"
    }
    assert exposed == set(users)


def _node_and_npm() -> tuple[str, str]:
    """Node and npm from the machine, else Debian's packages (as root); skip where impossible."""
    node, npm = shutil.which("node"), shutil.which("npm")
    apt = shutil.which("apt-get")
    if (node is None or npm is None) and apt is not None and os.geteuid() == 0:
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in ([apt, "update", "-q"], [apt, "install", "-y", "-q", "nodejs", "npm"]):
            subprocess.run(command, capture_output=True, timeout=1200, check=False, env=environment)
        node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(
            "Node.js and npm are not installed and cannot be here (Debian: apt-get install nodejs npm)"
        )
    return node, npm


def _node_modules() -> Path:
    """The npm packages, installed once into a cache directory; skip where npm cannot install them."""
    _, npm = _node_and_npm()
    cache = Path(os.environ.get("TURNOUT_NODE_CACHE") or Path(tempfile.gettempdir()) / "turnout-node-ofrep")
    stamp = cache / ("installed-" + "+".join(NODE_PACKAGES).replace("/", "_"))
    if not stamp.exists():
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "package.json").write_text('{"private": true}\n')
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *NODE_PACKAGES],
            cwd=cache,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"npm could not install {NODE_PACKAGES}: {done.stderr.strip()[-500:]}")
        stamp.touch()
    return cache


NODE_SCRIPT = """
const { OpenFeature } = require("@openfeature/server-sdk");
const { OFREPProvider } = require("@openfeature/ofrep-provider");
async function main() {
  const [baseUrl, usersJson] = process.argv.slice(2);
  const headers = [["Authorization", "Bearer js-token"]];
  await OpenFeature.setProviderAndWait(new OFREPProvider({ baseUrl, headers }));
  const client = OpenFeature.getClient();
  const out = {};
  for (const user of JSON.parse(usersJson)) {
    const ctx = { targetingKey: user, plan: "free" };
    const theme = await client.getStringDetails("theme", "none", ctx);
    const checkout = await client.getBooleanDetails("new-checkout", false, ctx);
    out[user] = {
      theme: theme.variant, reason: theme.reason, checkout: checkout.value, checkoutVariant: checkout.variant,
    };
  }
  const pro = { targetingKey: "user-1", plan: "pro" };
  out.$pageSize = await client.getNumberValue("page-size", 0, pro);
  out.$layout = await client.getObjectValue("layout", {}, pro);
  const missing = await client.getStringDetails("no-such-flag", "fallback", pro);
  out.$missing = [missing.value, missing.errorCode];
  await OpenFeature.close();
  console.log(JSON.stringify(out));
}
main().catch((error) => { console.error(error); process.exit(1); });
"""


def test_node_sdk_with_the_ofrep_provider(
    config: dict[str, Any], users: list[str], serve: Any, sink: MemorySink
) -> None:
    modules = _node_modules()
    turnout = Turnout(
        {**config, "ofrep": {"tokens": {hashlib.sha256(b"js-token").hexdigest(): "vue-app"}}},
        event_sinks=[sink],
    )
    script = modules / "ofrep_check.js"
    script.write_text(NODE_SCRIPT)
    with serve(turnout.ofrep_app()) as served:
        done = subprocess.run(
            [_node_and_npm()[0], str(script), served.url, json.dumps(users)],
            cwd=modules,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    for user in users:
        context = RoutingContext(user, {"plan": "free"})
        assert out[user]["theme"] == turnout.decide("theme", context).variant
        assert out[user]["reason"] == "SPLIT"
        assert out[user]["checkoutVariant"] == turnout.decide("new-checkout", context).variant
        assert out[user]["checkout"] is (out[user]["checkoutVariant"] == "on")
    assert out["$pageSize"] == 10
    assert out["$layout"] == {"columns": 1}
    assert out["$missing"] == ["fallback", "FLAG_NOT_FOUND"]
