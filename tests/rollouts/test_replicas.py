"""Two real processes on a real PostgreSQL: one evaluator merges both, both follow its decisions."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from canary_app import INTERVAL, START

pytestmark = pytest.mark.postgres

REPLICA = Path(__file__).with_name("replica.py")


class Replica:
    def __init__(self, state_url: str, min_samples: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(REPLICA), state_url, str(min_samples)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def __call__(self, do: str, **args: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"do": do, **args}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"replica exited with {self.process.wait(timeout=30)}"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def replicas(pg_url: str) -> Iterator[tuple[Replica, Replica]]:
    # 1,000 users per process give each about 100 canary requests an interval: fewer than
    # min_samples, so only the two processes' windows merged are conclusive.
    pair = (Replica(pg_url, 150), Replica(pg_url, 150))
    yield pair
    for replica in pair:
        replica.kill()


def interval(replicas: tuple[Replica, Replica], now: float, *, failing: bool) -> None:
    first, second = replicas
    for replica in (second, first):
        replica("traffic", failing=failing)
    # The second writes its window, then the first (the leader) writes its own and evaluates both.
    second("tick", now=now)
    first("tick", now=now)


def test_a_failing_canary_is_rolled_back_for_both_processes(replicas: tuple[Replica, Replica]) -> None:
    first, second = replicas
    first("tick", now=START)  # the first process to tick takes the leader lock
    second("tick", now=START)
    assert first("status")["leader"] is True
    assert second("status")["leader"] is False
    before = first("status")["treated"]
    assert before == second("status")["treated"]
    assert 50 < len(before) < 150  # 10% of the 1,000 users

    now = START
    for _ in range(3):
        now += INTERVAL
        interval(replicas, now, failing=True)
    status = first("status")
    assert (status["state"], status["treated"]) == ("rolled_back", [])
    # The other process sees it at its next round, within one interval...
    now += INTERVAL
    second("tick", now=now)
    assert (second("status")["state"], second("status")["treated"]) == ("rolled_back", [])
    # ...and both serve control from then on.
    assert first("status")["failures"].get("rollouts") is None
    assert second("status")["failures"].get("rollouts") is None


def test_windows_of_both_processes_are_merged_and_a_healthy_canary_advances(
    replicas: tuple[Replica, Replica],
) -> None:
    first, second = replicas
    now = START
    first("tick", now=now)
    second("tick", now=now)
    for _ in range(5):  # held 2 min (4 intervals) after the first check, then one more pass
        now += INTERVAL
        interval(replicas, now, failing=False)
    assert first("status")["step"] == 30
    now += INTERVAL
    second("tick", now=now)
    assert second("status")["step"] == 30
    assert first("status")["treated"] == second("status")["treated"]


def test_when_the_leader_dies_the_other_process_takes_over(replicas: tuple[Replica, Replica]) -> None:
    first, second = replicas
    first("tick", now=START)
    second("tick", now=START)
    assert second("status")["leader"] is False
    first.kill()
    now = START
    taken = False
    for _ in range(100):  # PostgreSQL ends the dead session's backend within moments
        now += INTERVAL
        second("tick", now=now)
        if taken := second("status")["leader"]:
            break
    assert taken
