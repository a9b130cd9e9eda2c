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


def test_the_command_start_up_and_its_launcher_come_first_in_the_time_by_phase():
    from hf_resnet101.train.phase_clock import LAUNCHER_PHASE, START_UP_PHASE, PhaseClock, start_up_phases

    before = start_up_phases(now=110.0, started=103.5, launcher_started=100.0)
    assert before == {LAUNCHER_PHASE: 3.5, START_UP_PHASE: 6.5}
    ticks = iter([0.0, 2.0])
    clock = PhaseClock(clock=lambda: next(ticks), before=before)
    clock.mark("scan")
    assert clock.describe() == (
        "Time by phase (12.0 s in all): launcher 3.5 s, start-up (Python, imports, options) 6.5 s, scan 2.0 s"
    )
    # Started without a launcher, or where the system does not say when a process started:
    assert start_up_phases(now=110.0, started=103.5, launcher_started=None) == {START_UP_PHASE: 6.5}
    assert start_up_phases(now=110.0, started=None, launcher_started=100.0) == {}


def test_work_the_process_did_before_python_is_not_counted_as_start_up():
    from hf_resnet101.train.phase_clock import START_UP_PHASE, start_up_phases

    # Python imported the package 0.5 s after the process started: the start-up counts from the process's start
    assert start_up_phases(now=110.0, started=103.5, launcher_started=None, imported_at=104.0) == {START_UP_PHASE: 6.5}
    # a shell installed for 100 s, then exec'd the command in the same process: counted from the import
    assert start_up_phases(now=210.0, started=100.0, launcher_started=None, imported_at=204.0) == {START_UP_PHASE: 6.0}


def test_a_command_a_shell_execs_after_other_work_times_its_own_start_up():
    """`bash -c "sleep 8 && exec python ..."`: the process starts with the shell; its start-up is Python's alone."""
    import subprocess
    import sys

    from hf_resnet101.train.phase_clock import START_UP_PHASE

    script = "from hf_resnet101.train.phase_clock import time_before_the_run; print(time_before_the_run())"
    shell = f"sleep 8 && exec {sys.executable} -c '{script}'"
    phases = eval(subprocess.run(["bash", "-c", shell], capture_output=True, text=True, check=True).stdout)  # noqa: S307
    assert 0 < phases[START_UP_PHASE] < 8.0, phases  # the shell's 8 s are not in it


def test_only_a_parent_that_set_the_launcher_variable_counts_as_the_launcher():
    from hf_resnet101.train.phase_clock import LAUNCHER_VARIABLE, started_by_launcher

    launched = {LAUNCHER_VARIABLE: "no"}
    assert started_by_launcher(launched, launcher_environ={"PATH": "/bin"})
    assert not started_by_launcher(launched, launcher_environ=launched)  # a shell that had it already
    assert not started_by_launcher({"PATH": "/bin"}, launcher_environ={"PATH": "/bin"})  # plain python
    assert not started_by_launcher(launched, launcher_environ=None)  # the parent's environment unreadable


def test_a_process_start_time_comes_from_the_system():
    import os
    import subprocess
    import time

    from hf_resnet101.train.phase_clock import process_started_at

    before = time.clock_gettime(time.CLOCK_BOOTTIME)
    child = subprocess.Popen(["sleep", "5"])
    try:
        after = time.clock_gettime(time.CLOCK_BOOTTIME)
        assert before - 0.02 <= process_started_at(child.pid) <= after + 0.02  # clock ticks of 10 ms
    finally:
        child.kill()
        child.wait()
    assert process_started_at(os.getpid()) <= before
    assert process_started_at(2**22 + 12345) is None  # no such process
