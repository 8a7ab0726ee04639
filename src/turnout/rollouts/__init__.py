"""Guarded rollouts: checks every interval, steps that advance only while healthy, pause and rollback.

`turnout.rollouts` (a `Rollouts`) gives `status(flag)`, `promote`, `pause`, `resume` and `abort`;
`docs/rollouts.md` explains checks, actions, the state store and running several replicas.
"""

from __future__ import annotations

from turnout.rollouts.checks import CheckResult, Outcome
from turnout.rollouts.controller import Rollouts
from turnout.rollouts.notifiers import LogNotifier, Notice, Notifier, WebhookNotifier
from turnout.rollouts.progress import RolloutError, State
from turnout.rollouts.status import RolloutStatus

__all__ = [
    "CheckResult",
    "LogNotifier",
    "Notice",
    "Notifier",
    "Outcome",
    "RolloutError",
    "RolloutStatus",
    "Rollouts",
    "State",
    "WebhookNotifier",
]
