"""A deterministic stand-in for an LLM: realistic latency and error rates, no network."""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import random
import time


class LLMError(RuntimeError):
    """The fake model failed (as real ones do: timeouts, 5xx, rate limits)."""


class FakeLLM:
    """Answers from templates after a lognormal delay; fails at `error_rate`.

    The delay and the failures come from a seeded generator, so a run with the same seed
    and the same sequence of calls behaves the same.
    """

    def __init__(
        self,
        *,
        name: str,
        median_ms: float,
        sigma: float = 0.5,
        error_rate: float = 0.0,
        seed: int = 0,
        resolve_rate: float = 0.5,
        cost_usd: float = 0.002,
    ) -> None:
        if median_ms < 0 or sigma < 0 or not 0 <= error_rate <= 1 or not 0 <= resolve_rate <= 1:
            raise ValueError("median_ms and sigma must be >= 0, error_rate and resolve_rate within 0..1")
        self.name = name
        self.median_ms = median_ms
        self.sigma = sigma
        self.error_rate = error_rate
        self.resolve_rate = resolve_rate
        self.cost_usd = cost_usd
        self._rng = random.Random(f"{name}:{seed}")
        # Outcomes draw from their own generator, so they never shift the delays and failures.
        self._outcomes = random.Random(f"{name}:{seed}:outcomes")

    def outcome(self) -> tuple[bool, float]:
        """(did the answer resolve the user's problem, what the call cost in USD) for one answer."""
        resolved = self._outcomes.random() < self.resolve_rate
        return resolved, round(self.cost_usd * math.exp(0.3 * self._outcomes.gauss(0.0, 1.0)), 6)

    @classmethod
    def from_env(
        cls,
        name: str,
        *,
        median_ms: float,
        error_rate: float,
        seed: int = 0,
        resolve_rate: float = 0.5,
        cost_usd: float = 0.002,
    ) -> FakeLLM:
        """`FAKE_LLM_<NAME>_MEDIAN_MS`, `_ERROR_RATE`, `_RESOLVE_RATE`, `_COST_USD` override the defaults."""
        prefix = f"FAKE_LLM_{name.upper()}_"
        return cls(
            name=name,
            median_ms=float(os.environ.get(prefix + "MEDIAN_MS", median_ms)),
            error_rate=float(os.environ.get(prefix + "ERROR_RATE", error_rate)),
            seed=seed,
            resolve_rate=float(os.environ.get(prefix + "RESOLVE_RATE", resolve_rate)),
            cost_usd=float(os.environ.get(prefix + "COST_USD", cost_usd)),
        )

    def _draw(self) -> tuple[float, bool]:
        delay = self.median_ms * math.exp(self.sigma * self._rng.gauss(0.0, 1.0)) / 1000.0
        return delay, self._rng.random() < self.error_rate

    async def generate(self, prompt: str) -> str:
        """An answer to `prompt` after a realistic delay."""
        delay, fail = self._draw()
        await asyncio.sleep(delay)
        if fail:
            raise LLMError(f"{self.name}: upstream model error")
        return _answer(self.name, prompt)

    def generate_sync(self, prompt: str) -> str:
        """The same, blocking (for sync engines, which run in a worker thread)."""
        delay, fail = self._draw()
        time.sleep(delay)
        if fail:
            raise LLMError(f"{self.name}: upstream model error")
        return _answer(self.name, prompt)


_TEMPLATES = (
    "I have looked into this for you: {topic}.",
    "Thanks for your patience. Here is what I found about {topic}.",
    "Good question! Regarding {topic}, here are the details.",
)


def _answer(name: str, prompt: str) -> str:
    digest = int(hashlib.sha256(prompt.encode("utf-8", "replace")).hexdigest()[:8], 16)
    topic = prompt.strip().splitlines()[-1][:60] if prompt.strip() else "your request"
    return f"[{name}] " + _TEMPLATES[digest % len(_TEMPLATES)].format(topic=topic)
