"""Runs recipes/finetune.py in this process with a fault injected at a training step (used by the tests).

    FAULT=NAME FAULT_STEP=N python tests/run_with_fault.py [finetune options]

kill: SIGKILL at the end of step N (a crash); kill_during_save: SIGKILL while checkpoint N is being finished,
before it is marked complete; interrupt: SIGINT (Ctrl-C) at the end of step N; interrupt_during_eval: SIGINT during
the evaluation after step N; terminate: SIGTERM at the end of step N;
disk_full: from the end of step N (0: once training has ended; -1: once the final model is saved) no file can grow
past 64 bytes (RLIMIT_FSIZE, so every write that follows fails in the kernel as on a full disk, with EFBIG instead
of ENOSPC). FAULT_RANK=R (several processes): only the process of rank R sends itself the signal, as when a signal
reaches one process just after another has ended its step.
"""

import os
import resource
import runpy
import signal
import sys
from pathlib import Path

from transformers import TrainerCallback

import hf_resnet101.train.checkpoints as checkpoints
import hf_resnet101.train.run as training

FAULT = os.environ["FAULT"]
STEP = int(os.environ["FAULT_STEP"])
SIGNALS = {"kill": signal.SIGKILL, "interrupt": signal.SIGINT, "terminate": signal.SIGTERM}


def this_rank_faults() -> bool:
    rank = os.environ.get("FAULT_RANK")
    return rank is None or rank == os.environ.get("RANK", "0")


def fill_disk():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


class InjectFault(TrainerCallback):
    sent = False

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == STEP and FAULT in SIGNALS and this_rank_faults():
            os.kill(os.getpid(), SIGNALS[FAULT])
        if state.global_step == STEP and FAULT == "disk_full":
            fill_disk()

    def on_prediction_step(self, args, state, control, **kwargs):
        if state.global_step == STEP and FAULT == "interrupt_during_eval" and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)

    def on_train_end(self, args, state, control, **kwargs):
        if STEP == 0 and FAULT == "disk_full":
            fill_disk()


def build_trainer_with_fault(*args, **kwargs):
    trainer = build_trainer(*args, **kwargs)
    trainer.add_callback(InjectFault())
    return trainer


def mark_complete_or_die(checkpoint, step, *args, **kwargs):
    if FAULT == "kill_during_save" and step == STEP:
        os.kill(os.getpid(), signal.SIGKILL)
    mark_complete(checkpoint, step, *args, **kwargs)


def save_final_model_then_fill_disk(*args, **kwargs):
    save_final_model(*args, **kwargs)
    if FAULT == "disk_full" and STEP == -1:
        fill_disk()


build_trainer, mark_complete = training.build_trainer, checkpoints.mark_complete
save_final_model = training.save_final_model
training.build_trainer = build_trainer_with_fault
checkpoints.mark_complete = mark_complete_or_die
training.save_final_model = save_final_model_then_fill_disk
recipe = Path(__file__).resolve().parents[1] / "recipes" / "finetune.py"
sys.argv = [str(recipe), *sys.argv[1:]]
runpy.run_path(str(recipe), run_name="__main__")
