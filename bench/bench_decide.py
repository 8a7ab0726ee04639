"""`Turnout.decide()` against GrowthBook, Unleash, OpenFeature and PostHog, in one run.

Every library gets the same flag: plan in [premium, enterprise] → langgraph, everyone
else split legacy 80 / workflow 10 / langgraph 10, evaluated locally for 100,000
distinct ids (user-0 … user-99999, 20% premium). One client object per library is reused
and only the per-call attributes change, as each SDK recommends for servers; GrowthBook
is also measured with a new `GrowthBook` per request, its documented Python pattern.
No network is used: a guard makes any connection attempt fail, and the count is printed.

    .venv/bin/python bench/bench_decide.py            # 100k ids, 7 passes (about a minute)
    .venv/bin/python bench/bench_decide.py --quick    # 10k ids, 3 passes
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import _common
from _common import PREMIUM_PLANS, SPLIT, TURNOUT_FLAG, VARIANTS, User

Evaluate = Callable[[str, str], Any]
"""(user id, plan) → the variant the library chose."""


@dataclass
class Contender:
    """A library set up for the benchmark, and the one call that is timed."""

    name: str
    note: str
    evaluate: Evaluate


# -- the contenders -----------------------------------------------------------------------


def turnout(hash_name: str = "murmur3") -> Contender:
    """turnout: a new `RoutingContext` per call, as the middleware makes one per request."""
    from turnout import RoutingContext, Turnout

    router = Turnout({"flags": {"coordinator": {**TURNOUT_FLAG, "hash": hash_name}}}, env={})
    decide = router.decide

    def evaluate(user: str, plan: str) -> str:
        return decide("coordinator", RoutingContext(user, {"plan": plan})).variant

    name = "turnout" if hash_name == "murmur3" else f"turnout (hash={hash_name})"
    return Contender(name, "Turnout.decide(flag, RoutingContext(...))", evaluate)


GROWTHBOOK_FEATURES: dict[str, Any] = {
    "coordinator": {
        "defaultValue": "legacy",
        "rules": [
            {"id": "premium", "condition": {"plan": {"$in": list(PREMIUM_PLANS)}}, "force": "langgraph"},
            {
                "id": "split",
                "key": "coordinator",
                "seed": "coordinator",
                "hashAttribute": "id",
                "hashVersion": 1,
                "variations": list(VARIANTS),
                "weights": [w / 100 for w in SPLIT.values()],
                "coverage": 1,
            },
        ],
    }
}


def growthbook_reused() -> Contender:
    """One GrowthBook; `set_attributes` then `get_feature_value` per call."""
    from growthbook import GrowthBook

    client = GrowthBook(attributes={}, features=GROWTHBOOK_FEATURES)
    set_attributes = client.set_attributes
    get_value = client.get_feature_value

    def evaluate(user: str, plan: str) -> Any:
        set_attributes({"id": user, "plan": plan})
        return get_value("coordinator", "legacy")

    return Contender("GrowthBook (one instance)", "set_attributes() + get_feature_value()", evaluate)


def growthbook_per_request() -> Contender:
    """A new GrowthBook per call, the Python SDK's documented per-request pattern."""
    from growthbook import GrowthBook

    def evaluate(user: str, plan: str) -> Any:
        client = GrowthBook(attributes={"id": user, "plan": plan}, features=GROWTHBOOK_FEATURES)
        return client.get_feature_value("coordinator", "legacy")

    return Contender(
        "GrowthBook (per request)", "GrowthBook(attributes, features) + get_feature_value()", evaluate
    )


def _unleash_strategy(
    variants: Sequence[tuple[str, int]], constraints: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "name": "flexibleRollout",
        "parameters": {"rollout": "100", "stickiness": "userId", "groupId": "coordinator"},
        "constraints": constraints,
        "variants": [
            {"name": name, "weight": weight * 10, "stickiness": "userId", "weightType": "variable"}
            for name, weight in variants
        ],
    }


UNLEASH_TOGGLES: dict[str, Any] = {
    "version": 1,
    "features": [
        {
            "name": "coordinator",
            "type": "experiment",
            "enabled": True,
            "strategies": [
                _unleash_strategy(
                    [("langgraph", 100)],
                    [{"contextName": "plan", "operator": "IN", "values": list(PREMIUM_PLANS)}],
                ),
                _unleash_strategy(list(SPLIT.items()), []),
            ],
        }
    ],
}
"""The body `/api/client/features` would serve: two flexibleRollout strategies with variants."""


def unleash() -> Contender:
    """UnleashClient bootstrapped from an in-memory cache; `initialize_client` is never called."""
    from UnleashClient import UnleashClient
    from UnleashClient.cache import BaseCache
    from UnleashClient.constants import FEATURES_URL

    class MemoryCache(BaseCache):
        """A bootstrapped cache holding the toggles; no files, no fetching."""

        def __init__(self, toggles: dict[str, Any]) -> None:
            self._data: dict[str, Any] = {FEATURES_URL: json.dumps(toggles)}
            self.bootstrapped = True

        def set(self, key: str, value: Any) -> None:
            self._data[key] = value

        def mset(self, data: dict[str, Any]) -> None:
            self._data.update(data)

        def get(self, key: str, default: Any = None) -> Any:
            return self._data.get(key, default)

        def exists(self, key: str) -> bool:
            return key in self._data

        def destroy(self) -> None:
            self._data.clear()

    # Without initialize_client() there is no registration, no polling and no metrics
    # thread: the bootstrapped toggles are all the client has, which is what we want.
    client = UnleashClient(
        url="http://127.0.0.1:9/api",
        app_name="turnout-bench",
        disable_metrics=True,
        disable_registration=True,
        cache=MemoryCache(UNLEASH_TOGGLES),
    )
    get_variant = client.get_variant

    def evaluate(user: str, plan: str) -> Any:
        return get_variant("coordinator", {"userId": user, "properties": {"plan": plan}})["name"]

    return Contender("UnleashClient", "get_variant() on bootstrapped toggles (flexibleRollout)", evaluate)


def openfeature() -> Contender:
    """OpenFeature's InMemoryProvider; it has no targeting or splits, so a minimal evaluator does them."""
    import mmh3
    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.flag_evaluation import FlagResolutionDetails, Reason
    from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

    ends = []
    total = 0.0
    for name, weight in SPLIT.items():
        total += weight / 100
        ends.append((name, total))
    premium = frozenset(PREMIUM_PLANS)

    def evaluator(flag: InMemoryFlag[str], context: EvaluationContext) -> FlagResolutionDetails[str]:
        if context.attributes.get("plan") in premium:
            return FlagResolutionDetails("langgraph", variant="langgraph", reason=Reason.TARGETING_MATCH)
        position = mmh3.hash("coordinator:" + (context.targeting_key or ""), 0, False) / 2**32
        variant = next((name for name, end in ends if position < end), "legacy")
        return FlagResolutionDetails(variant, variant=variant, reason=Reason.SPLIT)

    flag = InMemoryFlag("legacy", {v: v for v in VARIANTS}, context_evaluator=evaluator)
    api.set_provider(InMemoryProvider({"coordinator": flag}))
    get_value = api.get_client().get_string_value

    def evaluate(user: str, plan: str) -> Any:
        return get_value("coordinator", "legacy", EvaluationContext(user, {"plan": plan}))

    return Contender(
        "OpenFeature InMemoryProvider", "client.get_string_value(), hand-written evaluator", evaluate
    )


POSTHOG_FLAG: dict[str, Any] = {
    "id": 1,
    "key": "coordinator",
    "active": True,
    "ensure_experience_continuity": False,
    "filters": {
        "groups": [
            {
                "properties": [
                    {"key": "plan", "type": "person", "operator": "exact", "value": list(PREMIUM_PLANS)}
                ],
                "rollout_percentage": 100,
                "variant": "langgraph",
            },
            {"properties": [], "rollout_percentage": 100},
        ],
        "multivariate": {"variants": [{"key": k, "rollout_percentage": w} for k, w in SPLIT.items()]},
    },
}
"""A flag definition as `/api/feature_flag/local_evaluation` returns it."""


def posthog() -> Contender:
    """PostHog local evaluation with the definitions injected; no poller, no event sending."""
    from posthog import Posthog

    client = Posthog(
        "phc_bench",
        host="http://127.0.0.1:9",
        secret_key="phx_bench",  # local evaluation needs a key; it is never used here
        send=False,
        sync_mode=True,  # no consumer threads
        disable_geoip=True,
    )
    # What the poller would publish; set before the first evaluation, so no poller starts.
    client.feature_flags = [POSTHOG_FLAG]
    client.group_type_mapping = {}
    client.cohorts = {}
    get_result = client.get_feature_flag_result

    def evaluate(user: str, plan: str) -> Any:
        result = get_result(
            "coordinator",
            user,
            person_properties={"plan": plan},
            only_evaluate_locally=True,
            send_feature_flag_events=False,
        )
        return result.get_value() if result is not None else None

    return Contender(
        "PostHog (local evaluation)", "get_feature_flag_result(only_evaluate_locally=True)", evaluate
    )


def harness() -> Contender:
    """No library at all: what the timing loop itself costs per call."""

    def evaluate(user: str, plan: str) -> Any:
        return None

    return Contender("(timing loop only)", "a call to a function that does nothing", evaluate)


# -- the run ------------------------------------------------------------------------------


def check(contenders: Sequence[Contender], people: Sequence[User]) -> dict[str, list[Any]]:
    """Evaluate every id once with every library (untimed: also the warm-up); print the shares."""
    chosen = {c.name: [c.evaluate(user, plan) for user, plan in people] for c in contenders}
    rows = []
    for contender in contenders:
        if contender.name == "(timing loop only)":
            continue
        premium, others, everyone = _common.shares(
            (plan, variant) for (_, plan), variant in zip(people, chosen[contender.name], strict=True)
        )
        rows.append((contender.name, premium, others, everyone))
    print("\nAssignments, % legacy / workflow / langgraph (expected: premium 0/0/100,")
    print("others 80/10/10, all 64/8/28):\n")
    print(_common.table(("library", "premium+enterprise", "free+pro", "all"), rows))
    return chosen


def main() -> None:
    """Set every library up, check the assignments, time them interleaved, print the table."""
    args = _common.parse_args(__doc__.splitlines()[0])
    guard = _common.NetworkGuard()
    guard.install()
    people = _common.users(args.ids)
    print(f"# decide() vs feature-flag SDKs: {args.ids:,} ids, {args.reps} passes\n")
    print(_common.machine())
    print(_common.versions(("turnout", "growthbook", "UnleashClient", "openfeature-sdk", "posthog", "mmh3")))

    contenders = [
        turnout(),
        turnout("growthbook-v1"),
        growthbook_reused(),
        growthbook_per_request(),
        unleash(),
        openfeature(),
        posthog(),
        harness(),
    ]
    chosen = check(contenders, people)
    same = sum(
        a == b
        for a, b in zip(
            chosen["turnout (hash=growthbook-v1)"], chosen["GrowthBook (one instance)"], strict=True
        )
    )
    print(f"\nturnout with hash=growthbook-v1 agrees with GrowthBook on {same:,} of {len(people):,} ids.")

    batches = _common.chunks(people)
    sizes = [len(b) for b in batches]
    results = [_common.Result(c.name, c.note) for c in contenders]
    for rep in range(1, args.reps + 1):
        for contender, result in zip(contenders, results, strict=True):
            evaluate = contender.evaluate

            def run(batch: Sequence[User], evaluate: Evaluate = evaluate) -> None:
                for user, plan in batch:
                    evaluate(user, plan)

            result.add_pass(_common.time_batches(run, batches), sizes)
        _common.progress(rep, args.reps)

    ours = results[0]
    libraries = [r for r in results[2:] if r.name != "(timing loop only)"]
    rows = [
        (
            r.name,
            f"{r.median_us:.2f}",
            f"{r.best_us:.2f}",
            f"{r.percentile_us(10):.2f}–{r.percentile_us(90):.2f}",
            f"{r.median_us / ours.median_us:.1f}× / {r.best_us / ours.best_us:.1f}×"
            if r.name != "(timing loop only)"
            else "—",
            r.note,
        )
        for r in results
    ]
    print(f"\nPer call: median of {args.reps} passes over {args.ids:,} ids, the fastest pass,")
    print(f"p10–p90 of {_common.BATCH:,}-call batches; the library's time over turnout's, from the")
    print("medians / from the fastest passes:\n")
    print(
        _common.table(
            ("library", "µs/call", "best pass", "p10–p90", "vs turnout", "what is timed"),
            rows,
            right=(1, 2, 3, 4),
        )
    )
    fastest = min(libraries, key=lambda r: r.median_us)
    print(
        f"\nturnout is {fastest.median_us / ours.median_us:.1f}× faster than the fastest other library "
        f"by medians ({fastest.name}, {fastest.median_us:.2f} µs against {ours.median_us:.2f} µs), "
        f"{min(r.best_us for r in libraries) / ours.best_us:.1f}× by fastest passes; the target is 10×."
    )
    _common.save_ratio(
        args.json, "decide", fastest.median_us / ours.median_us, target=10.0, higher_is_better=True
    )
    print(f"{guard.report()}; {_common.load()} at the end")


if __name__ == "__main__":
    main()
