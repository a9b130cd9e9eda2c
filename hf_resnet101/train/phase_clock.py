"""Where a run's wall-clock time goes, phase by phase, for the run's log (what start-up and the end of a run cost)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from ..config.hardware import parent_environment, set_by_launcher
from ..import_clock import IMPORTED_AT

# What `accelerate launch` (and so `hf-resnet101 train`) sets for the processes it starts, single or several.
LAUNCHER_VARIABLE = "ACCELERATE_DYNAMO_BACKEND"
LAUNCHER_PHASE = "launcher"
START_UP_PHASE = "start-up (Python, imports, options)"


def process_started_at(pid: int) -> float | None:
    """When process `pid` started, in seconds on the boot-time clock (`time.CLOCK_BOOTTIME`), or None where the
    system does not say (no Linux /proc, or no such process). The kernel counts it in clock ticks (10 ms)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime; the name before ")" may hold spaces
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def started_by_launcher(environ: Mapping[str, str], launcher_environ: Mapping[str, str] | None) -> bool:
    """True when the parent process launched this one: it set the launcher's variable, which it was not given."""
    return set_by_launcher(LAUNCHER_VARIABLE, environ, launcher_environ)


# Python reaches the package's first import within this of the process's start, cold caches included. A longer gap
# means the process did other work before Python: a shell exec's the last command of `bash -c "pip install ... &&
# hf-resnet101 demo"` in its own process, whose start time is then the shell's.
INTERPRETER_START_LIMIT_S = 5.0


def start_up_phases(
    now: float, started: float | None, launcher_started: float | None, imported_at: float | None = None
) -> dict[str, float]:
    """The time before the run began, as phases (times in seconds on one clock).

    The launcher's phase runs from its start to this process's (its Python, its imports, its checks); the start-up
    from this process's start to `now` (Python, the package's imports, parsing the options). `imported_at`, when the
    package was first imported, replaces the process's start when it comes more than `INTERPRETER_START_LIMIT_S`
    after it (the process ran something else first).
    """
    if started is None:
        return {}
    if imported_at is not None and imported_at - started > INTERPRETER_START_LIMIT_S:
        started = imported_at
    phases = {} if launcher_started is None else {LAUNCHER_PHASE: max(started - launcher_started, 0.0)}
    return phases | {START_UP_PHASE: max(now - started, 0.0)}


def time_before_the_run() -> dict[str, float]:
    """What this command spent before its run began: call it from the entry point, as the run starts."""
    started = process_started_at(os.getpid())
    if started is None:  # not Linux: no /proc, and no boot-time clock to compare with
        return {}
    parent = os.getppid()
    launched = started_by_launcher(os.environ, parent_environment(parent))
    launcher_started = process_started_at(parent) if launched else None
    return start_up_phases(time.clock_gettime(time.CLOCK_BOOTTIME), started, launcher_started, IMPORTED_AT)


class PhaseClock:
    """Attributes the time since the previous mark to a named phase.

    `before` holds phases timed before the clock started (the command's start-up), which the log shows first.
    """

    def __init__(self, clock=time.perf_counter, before: Mapping[str, float] | None = None):
        self.clock = clock
        self.last = clock()
        self.seconds: dict[str, float] = dict(before or {})

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
