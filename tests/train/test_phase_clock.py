"""PhaseClock: where a run's time goes, phase by phase."""

from __future__ import annotations


def test_phase_clock_splits_the_time_between_marks():
    from hf_resnet101.train.phase_clock import PhaseClock

    ticks = iter([0.0, 2.0, 12.0])
    clock = PhaseClock(clock=lambda: next(ticks))
    clock.mark("scan")
    clock.mark("set-up", inner={"training": 7.5})
    assert clock.seconds == {"scan": 2.0, "training": 7.5, "set-up": 2.5}
    assert clock.describe().startswith("Time by phase (12.0 s in all): scan 2.0 s")


def test_a_phase_marked_twice_adds_up_and_never_goes_negative():
    from hf_resnet101.train.phase_clock import PhaseClock

    ticks = iter([0.0, 1.0, 3.0, 4.0])
    clock = PhaseClock(clock=lambda: next(ticks))
    clock.mark("evaluation")
    clock.mark("training")
    clock.mark("evaluation", inner={"training": 5.0})  # timed elsewhere longer than the gap: clamped at zero
    assert clock.seconds == {"evaluation": 1.0, "training": 7.0}
