"""Plugin discovery through entry points, faked with monkeypatch the way pluggy's tests do."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from turnout import ConfigError, RoutingContext, Turnout
from turnout import plugins as plugin_module
from turnout.cli import main
from turnout.plugins import PluginError, discover, installed_plugins, load_plugin


class FakeDist:
    def __init__(self, name: str, version: str = "1.2.3") -> None:
        self.name = name
        self.version = version


class FakeEntryPoint:
    def __init__(self, name: str, group: str, value: str, dist: str = "acme-turnout-plugins") -> None:
        self.name, self.group, self.value = name, group, value
        self.dist = FakeDist(dist)

    def load(self) -> Any:
        module, _, attribute = self.value.partition(":")
        return getattr(__import__(module, fromlist=["_"]), attribute)


def shouting_engine(prefix: str = "") -> Any:
    def engine(message: str) -> str:
        return prefix + message.upper()

    return engine


@pytest.fixture
def fake_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FakeEntryPoint]]:
    module = types.ModuleType("acme_plugins")
    module.shouting = shouting_engine  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "acme_plugins", module)
    points = [
        FakeEntryPoint("shouting", "turnout.engines", "acme_plugins:shouting"),
        FakeEntryPoint("broken", "turnout.engines", "acme_plugins:does_not_exist", dist="broken-dist"),
        FakeEntryPoint("null", "turnout.exporters", "acme_plugins:shouting"),
    ]

    def fake_entry_points(*, group: str) -> list[FakeEntryPoint]:
        return [ep for ep in points if ep.group == group]

    monkeypatch.setattr(plugin_module, "entry_points", fake_entry_points)
    monkeypatch.delenv("TURNOUT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    plugin_module.clear_cache()
    yield points
    plugin_module.clear_cache()


def config(plugin: str, **options: Any) -> dict[str, Any]:
    return {
        "engines": {"loud": {"plugin": plugin, "options": options}},
        "flags": {"coordinator": {"variants": ["loud"], "default": "loud"}},
    }


async def test_config_uses_an_engine_plugin_by_name(fake_plugins: list[FakeEntryPoint]) -> None:
    turnout = Turnout(config("shouting", prefix=">> "))
    assert await turnout.run("coordinator", "hi", context=RoutingContext("u1")) == ">> HI"


def test_missing_plugin_names_group_name_and_what_is_installed(fake_plugins: list[FakeEntryPoint]) -> None:
    with pytest.raises(ConfigError) as caught:
        Turnout(config("whispering"))
    issue = caught.value.issues[0]
    assert issue.path == "engines.loud.plugin"
    assert issue.value == "whispering"
    assert "'turnout.engines'" in issue.message
    assert "shouting (acme-turnout-plugins)" in issue.message


def test_plugin_that_fails_to_load_names_its_distribution(fake_plugins: list[FakeEntryPoint]) -> None:
    with pytest.raises(ConfigError) as caught:
        Turnout(config("broken"))
    assert "broken-dist" in caught.value.issues[0].message
    # the broken one does not take the others down
    assert load_plugin("turnout.engines", "shouting") is shouting_engine


def test_rejected_options_are_a_load_error(fake_plugins: list[FakeEntryPoint]) -> None:
    with pytest.raises(ConfigError) as caught:
        Turnout(config("shouting", volume=11))
    assert "rejected its options" in caught.value.issues[0].message
    assert "volume" in caught.value.issues[0].message


def test_block_list_hides_a_plugin(fake_plugins: list[FakeEntryPoint]) -> None:
    data = config("shouting") | {"plugins": {"block": ["turnout.engines:shouting"]}}
    with pytest.raises(ConfigError) as caught:
        Turnout(data)
    assert "blocked" in caught.value.issues[0].message
    assert "shouting" not in discover("turnout.engines", block=["shouting"])


def test_disable_autoload_turns_discovery_off(
    fake_plugins: list[FakeEntryPoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TURNOUT_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert discover("turnout.engines") == {}
    with pytest.raises(ConfigError) as caught:
        Turnout(config("shouting"))
    assert "TURNOUT_DISABLE_PLUGIN_AUTOLOAD" in caught.value.issues[0].message
    # a factory named by import path needs no discovery
    direct = Turnout(config("acme_plugins:shouting"))
    assert "loud" in direct.engines


def test_config_autoload_false_turns_discovery_off(fake_plugins: list[FakeEntryPoint]) -> None:
    with pytest.raises(ConfigError) as caught:
        Turnout(config("shouting") | {"plugins": {"autoload": False}})
    assert "autoload = false" in caught.value.issues[0].message


def test_unknown_group_is_an_error() -> None:
    with pytest.raises(PluginError, match="unknown plugin group"):
        discover("turnout.nope")


def test_installed_plugins_reports_each_with_whether_it_loads(fake_plugins: list[FakeEntryPoint]) -> None:
    infos = {(i.group, i.name): i for i in installed_plugins()}
    assert infos[("turnout.engines", "shouting")].loads
    assert infos[("turnout.engines", "shouting")].distribution == "acme-turnout-plugins"
    assert infos[("turnout.engines", "shouting")].version == "1.2.3"
    assert not infos[("turnout.engines", "broken")].loads
    assert "AttributeError" in (infos[("turnout.engines", "broken")].error or "")


def test_cli_lists_plugins(fake_plugins: list[FakeEntryPoint], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plugins"])
    out = capsys.readouterr().out
    assert code == 1  # one plugin does not load
    assert "turnout.engines" in out and "shouting" in out and "acme-turnout-plugins" in out
    assert "NO: AttributeError" in out


def test_discovery_is_cached(fake_plugins: list[FakeEntryPoint], monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = plugin_module.entry_points

    def counting(*, group: str) -> Any:
        calls.append(group)
        return original(group=group)

    monkeypatch.setattr(plugin_module, "entry_points", counting)
    plugin_module.clear_cache()
    discover("turnout.engines")
    discover("turnout.engines")
    assert calls == ["turnout.engines"]


def test_secrets_in_sink_urls_never_reach_error_messages() -> None:
    with pytest.raises(ConfigError) as caught:
        Turnout({"events": {"sinks": ["nosuchsink://u:hunter2@host/db?api_key=phc_secret"]}})
    issue = caught.value.issues[0]
    assert issue.path == "events.sinks[0]"
    text = str(caught.value)
    assert "hunter2" not in text and "phc_secret" not in text
    assert "***" in str(issue.value)
