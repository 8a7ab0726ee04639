"""GrowthBook feature definitions converted to turnout flags that assign users as its SDKs do.

A GrowthBook feature (`{"defaultValue": ..., "rules": [...]}`) becomes a `kind = "value"` flag:
each distinct value a variant, force rules `serve` rules (or covered splits when they roll
out to a percentage), experiment rules splits with GrowthBook's hashing, coverage, weights
and seed. Conditions carry over unchanged: turnout reads GrowthBook's operator language.
What turnout cannot reproduce exactly (namespaces, filters, explicit ranges, prerequisites,
passthrough variations, differing hash attributes in one feature) is an error naming the rule.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

from turnout.conditions import compile_condition
from turnout.errors import ConditionError, ConfigIssue, TurnoutError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_UNSUPPORTED = ("namespace", "filters", "range", "ranges", "parentConditions", "contextualVariations")
_HASHES = {1: "growthbook-v1", 2: "growthbook-v2"}


class GrowthBookImportError(TurnoutError):
    """Features that cannot be converted exactly; `issues` name each feature and rule."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        lines = "\n".join(f"  - {issue}" for issue in issues)
        super().__init__(
            f"{len(issues)} GrowthBook feature problem{'s' if len(issues) != 1 else ''}:\n{lines}"
        )


def import_features(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A turnout config (`{"flags": {...}}`) from GrowthBook features.

    `payload` is the SDK payload (`{"features": {...}}`) or the features object itself.
    """
    if "encryptedFeatures" in payload and "features" not in payload:
        raise GrowthBookImportError(
            [
                ConfigIssue(
                    "encryptedFeatures", "...", "the payload is encrypted: export the decrypted features"
                )
            ]
        )
    features = payload.get("features", payload)
    if not isinstance(features, Mapping):
        raise GrowthBookImportError([ConfigIssue("features", features, "expected an object of features")])
    flags: dict[str, Any] = {}
    issues: list[ConfigIssue] = []
    for key, feature in features.items():
        path = f"features.{key}"
        if not isinstance(feature, Mapping):
            issues.append(ConfigIssue(path, feature, "a feature is an object with defaultValue and rules"))
            continue
        converter = _Feature(str(key), path)
        flag = converter.convert(feature)
        issues.extend(converter.issues)
        if flag is not None:
            flags[str(key)] = flag
    if issues:
        raise GrowthBookImportError(issues)
    config: dict[str, Any] = {"flags": flags}
    attributes = _attributes(flags)
    if attributes:
        # The app passes these to turnout as it passed them to GrowthBook's SDK.
        config["routing"] = {"attributes": attributes}
    return config


def _attributes(flags: Mapping[str, Any]) -> list[str]:
    """The attributes the flags' conditions and `hash_by` read."""
    names: set[str] = set()
    for key, flag in flags.items():
        if flag.get("hash_by"):
            names.add(flag["hash_by"])
        for index, rule in enumerate(flag.get("rules", [])):
            if "when" in rule:
                try:
                    condition = compile_condition(rule["when"], path=f"flags.{key}.rules[{index}].when")
                except ConditionError:
                    continue  # reported when the converted config is validated
                names.update(condition.attributes)
    return sorted(names)


class _Feature:
    """One feature's conversion: its variants (one per distinct value) and rules."""

    def __init__(self, key: str, path: str) -> None:
        self.key = key
        self.path = path
        self.issues: list[ConfigIssue] = []
        self.values: dict[str, Any] = {}
        self._names: dict[str, str] = {}
        self.hash_attribute: str | None = None

    def convert(self, feature: Mapping[str, Any]) -> dict[str, Any] | None:
        if feature.get("defaultValue") is None:
            self.issues.append(
                ConfigIssue(f"{self.path}.defaultValue", None, "a feature needs a non-null default value")
            )
            return None
        default = self.variant(feature["defaultValue"], f"{self.path}.defaultValue")
        rules: list[dict[str, Any]] = []
        raw_rules = feature.get("rules") or []
        for index, rule in enumerate(raw_rules):
            converted = self.rule(index, rule, f"{self.path}.rules[{index}]")
            if converted is not None:
                rules.append(converted)
        flag: dict[str, Any] = {"kind": "value", "values": self.values, "default": default}
        if self.hash_attribute not in (None, "id"):
            flag["hash_by"] = self.hash_attribute
        if rules:
            flag["rules"] = rules
        return flag

    def variant(self, value: Any, path: str) -> str:
        """The variant name standing for `value` (the same value always gets the same name)."""
        if value is None:
            self.issues.append(ConfigIssue(path, value, "a value cannot be null"))
            return ""
        canonical = json.dumps(value, sort_keys=True)
        name = self._names.get(canonical)
        if name is not None:
            return name
        if isinstance(value, bool):
            name = "true" if value else "false"
        elif isinstance(value, str) and _NAME.match(value):
            name = value
        elif isinstance(value, int | float) and math.isfinite(value):
            name = json.dumps(value)
        else:
            name = f"value-{len(self.values) + 1}"
        base, count = name, 1
        while name in self.values:
            count += 1
            name = f"{base}-{count}"
        self._names[canonical] = name
        self.values[name] = value
        return name

    def rule(self, index: int, rule: Any, path: str) -> dict[str, Any] | None:
        if not isinstance(rule, Mapping):
            self.issues.append(ConfigIssue(path, rule, "a rule is an object"))
            return None
        for key in _UNSUPPORTED:
            if rule.get(key):
                self.issues.append(
                    ConfigIssue(
                        f"{path}.{key}", rule[key], "turnout cannot reproduce this GrowthBook setting"
                    )
                )
                return None
        name = str(rule.get("id") or f"rule-{index}")
        if "force" in rule and rule["force"] is not None:
            return self.force_rule(name, rule, path)
        if isinstance(rule.get("variations"), list):
            return self.experiment_rule(name, rule, path)
        return None  # the SDKs skip a rule with neither force nor variations

    def force_rule(self, name: str, rule: Mapping[str, Any], path: str) -> dict[str, Any] | None:
        variant = self.variant(rule["force"], f"{path}.force")
        coverage = rule.get("coverage")
        out: dict[str, Any] = {"name": name}
        if coverage is None:
            out.update(self.when(rule))
            out["serve"] = variant
            return out
        coverage = min(max(float(coverage), 0.0), 1.0)
        if coverage == 0:
            return None  # the SDKs include nobody
        out.update(self.hashed(rule, path))
        out["split"] = {variant: 100}
        out["coverage"] = coverage
        out["seed"] = str(rule.get("seed") or self.key)
        return out

    def experiment_rule(self, name: str, rule: Mapping[str, Any], path: str) -> dict[str, Any] | None:
        variations = rule["variations"]
        if len(variations) < 2:
            return None  # the SDKs skip an experiment with fewer than two variations
        for meta_index, meta in enumerate(rule.get("meta") or []):
            if isinstance(meta, Mapping) and meta.get("passthrough"):
                self.issues.append(
                    ConfigIssue(
                        f"{path}.meta[{meta_index}].passthrough", True, "passthrough is not supported"
                    )
                )
                return None
        names = [self.variant(value, f"{path}.variations[{i}]") for i, value in enumerate(variations)]
        if len(set(names)) != len(names):
            self.issues.append(
                ConfigIssue(f"{path}.variations", variations, "two variations hold the same value")
            )
            return None
        weights = _weights(rule.get("weights"), len(variations), f"{path}.weights", self.issues)
        if weights is None:
            return None
        experiment = str(rule.get("key") or self.key)
        out: dict[str, Any] = {"name": name, "experiment": experiment}
        out.update(self.hashed(rule, path))
        out["split"] = dict(zip(names, weights, strict=True))
        coverage = rule.get("coverage")
        if coverage is not None and float(coverage) < 1:
            out["coverage"] = max(float(coverage), 0.0)
        out["seed"] = str(rule.get("seed") or experiment)
        return out

    def hashed(self, rule: Mapping[str, Any], path: str) -> dict[str, Any]:
        """`when` and `hash` of a rule that buckets users, on the feature's one hash attribute."""
        attribute = str(rule.get("hashAttribute") or "id")
        if self.hash_attribute is None:
            self.hash_attribute = attribute
        elif attribute != self.hash_attribute:
            self.issues.append(
                ConfigIssue(
                    f"{path}.hashAttribute",
                    attribute,
                    f"every rule of a feature must hash the same attribute; an earlier one hashes "
                    f"{self.hash_attribute!r}",
                )
            )
        version = rule.get("hashVersion") or 1
        if version not in _HASHES:
            self.issues.append(
                ConfigIssue(f"{path}.hashVersion", version, "GrowthBook has hash versions 1 and 2")
            )
            version = 1
        out = self.when(rule, hashable=None if attribute == "id" else attribute)
        out["hash"] = _HASHES[version]
        return out

    def when(self, rule: Mapping[str, Any], hashable: str | None = None) -> dict[str, Any]:
        """The rule's condition; users without a usable `hashable` attribute skip it, as in the SDKs."""
        parts: list[Any] = []
        condition = rule.get("condition")
        if condition:
            parts.append(condition)
        if hashable is not None:
            parts.append(
                {
                    "$or": [
                        {hashable: {"$type": "string", "$ne": ""}},
                        {hashable: {"$type": "number", "$ne": 0}},
                    ]
                }
            )
        if not parts:
            return {}
        return {"when": parts[0] if len(parts) == 1 else {"$and": parts}}


def _weights(raw: Any, count: int, path: str, issues: list[ConfigIssue]) -> list[float] | None:
    """Percent weights that give the very ranges the SDKs compute from `raw`."""
    valid = (
        isinstance(raw, list)
        and len(raw) == count
        and all(
            isinstance(w, int | float) and not isinstance(w, bool) and math.isfinite(w) and w >= 0
            for w in raw
        )
        and 0.99 <= sum(raw) <= 1.01
    )
    if not valid:
        # The SDKs fall back to equal weights for a missing or unusable list.
        raw = [1 / count] * count
    total = sum((Fraction(repr(float(w))) for w in raw), Fraction(0))
    if abs(total - 1) > Fraction(1, 10**9):
        # The SDKs leave the part past the sum unassigned; turnout would stretch the ranges.
        issues.append(
            ConfigIssue(path, raw, f"weights must add up to 1 to be reproduced exactly (sum {float(total)})")
        )
        return None
    # Through Decimal, so 0.07 becomes 7.0 (not 7.000000000000001) and back to the same double.
    return [float(Decimal(repr(float(w))) * 100) for w in raw]
