"""One replica of the canary app, steered by JSON lines on stdin (for the two-process tests).

    {"do": "traffic", "failing": true}   serve every user once
    {"do": "tick", "now": 1764547230.0}  one guardrail round at that time
    {"do": "status"}                     state, step, treated users, whether this process leads
    {"do": "stop"}

Each command is answered with one JSON line on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys

import structlog
from canary_app import Canary, FakeClock


async def main(state_url: str, min_samples: int) -> None:
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout is for answers
    clock = FakeClock()
    canary = Canary(state_url, clock, min_samples=min_samples)
    rollouts = canary.turnout.rollouts
    for line in sys.stdin:
        command = json.loads(line)
        answer: dict[str, object] = {"ok": True}
        if command["do"] == "traffic":
            canary.failing = bool(command["failing"])
            await canary.traffic()
        elif command["do"] == "tick":
            clock.now = float(command["now"])
            await rollouts.tick()
        elif command["do"] == "status":
            status = rollouts.status("coordinator")
            leader = rollouts._leader is not None and rollouts._leader.acquire()
            answer = {"state": status.state, "step": status.step, "treated": sorted(canary.treated())}
            answer["leader"] = leader
            answer["failures"] = canary.turnout.failures.snapshot()
        elif command["do"] == "stop":
            await canary.turnout.stop()
            print(json.dumps(answer), flush=True)
            return
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
