"""The package's first-import time, which the run's log uses to time its start-up."""

from __future__ import annotations

import os
import time


def test_the_import_time_lies_between_the_process_start_and_now():
    from hf_resnet101.import_clock import IMPORTED_AT
    from hf_resnet101.train.phase_clock import process_started_at

    assert IMPORTED_AT is not None  # Linux
    assert process_started_at(os.getpid()) - 0.02 <= IMPORTED_AT <= time.clock_gettime(time.CLOCK_BOOTTIME)
