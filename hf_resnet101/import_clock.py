"""When this package was first imported, for the run's log (`train.phase_clock.start_up_phases`).

On the clock of /proc's process start times (Linux; None elsewhere). The package's `__init__` imports this module
first, so the time is Python's start-up plus the few milliseconds before the package's own imports begin.
"""

from __future__ import annotations

import time

IMPORTED_AT: float | None = time.clock_gettime(time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else None
