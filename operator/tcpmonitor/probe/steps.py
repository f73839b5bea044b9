"""spec.steps: a dialog written in the spec, run on the same session as the built-in protocols.

Each step sends, then reads until its expect matches what arrived since the step began, then
upgrades to TLS if asked; what matched is consumed, so the next step's expect sees only what
comes after.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..api.regex import Regex
from .failures import ProbeFailure
from .session import Framer, Session


@dataclass(frozen=True)
class PlannedStep:
    send: bytes | None
    expect: Regex | None
    expect_text: str | None
    start_tls: bool


@dataclass
class StepTiming:
    milliseconds: float
    passed: bool


def _expect_framer(pattern: Regex) -> Framer:
    def framer(data: bytes) -> int | None:
        return len(data) if pattern.search(data.decode("utf-8", "replace")) else None

    return framer


async def run_steps(
    session: Session, steps: tuple[PlannedStep, ...], timings: list[StepTiming]
) -> None:
    """Run ``steps`` in order, appending each one's timing as it ends (the failed one too)."""
    for index, step in enumerate(steps):
        started = time.perf_counter()
        where = f"steps[{index}]"
        try:
            if step.send is not None:
                session.send(step.send)
            if step.expect is not None:
                await session.read(_expect_framer(step.expect), f'"{step.expect_text}"', where)
            if step.start_tls:
                await session.start_tls()
        except ProbeFailure as failure:
            timings.append(StepTiming(round((time.perf_counter() - started) * 1000, 3), False))
            if not failure.message.startswith(where):
                failure = ProbeFailure(failure.code, f"{where}: {failure.message}")
            raise failure from None
        timings.append(StepTiming(round((time.perf_counter() - started) * 1000, 3), True))
