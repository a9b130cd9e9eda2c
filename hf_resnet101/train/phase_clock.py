"""Where a run's wall-clock time goes, phase by phase, for the run's log (what start-up and the end of a run cost)."""

from __future__ import annotations

import time


class PhaseClock:
    """Attributes the time since the previous mark to a named phase."""

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.last = clock()
        self.seconds: dict[str, float] = {}

    def mark(self, phase: str, inner: dict[str, float] | None = None) -> None:
        """Ends `phase` now; `inner` names parts of it timed elsewhere (the Trainer's own training time)."""
        now = self.clock()
        elapsed = now - self.last
        for name, seconds in (inner or {}).items():
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            elapsed -= seconds
        self.seconds[phase] = self.seconds.get(phase, 0.0) + max(elapsed, 0.0)
        self.last = now

    def describe(self) -> str:
        total = sum(self.seconds.values())
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.seconds.items())
        return f"Time by phase ({total:.1f} s in all): {parts}"
