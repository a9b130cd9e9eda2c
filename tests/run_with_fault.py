"""Runs recipes/finetune.py in this process with a fault injected at a training step (used by the tests).

    FAULT=kill|kill_during_save|interrupt FAULT_STEP=N python tests/run_with_fault.py [finetune options]

kill: SIGKILL at the end of step N (a crash); kill_during_save: SIGKILL while checkpoint N is being finished,
before it is marked complete; interrupt: SIGINT (Ctrl-C) at the end of step N.
"""

import os
import runpy
import signal
import sys
from pathlib import Path

from transformers import TrainerCallback

import hf_resnet101.checkpoints as checkpoints
import hf_resnet101.training as training

FAULT = os.environ["FAULT"]
STEP = int(os.environ["FAULT_STEP"])


class InjectFault(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == STEP and FAULT in ("kill", "interrupt"):
            os.kill(os.getpid(), signal.SIGKILL if FAULT == "kill" else signal.SIGINT)


def build_trainer_with_fault(*args, **kwargs):
    trainer = build_trainer(*args, **kwargs)
    trainer.add_callback(InjectFault())
    return trainer


def mark_complete_or_die(checkpoint, step):
    if FAULT == "kill_during_save" and step == STEP:
        os.kill(os.getpid(), signal.SIGKILL)
    mark_complete(checkpoint, step)


build_trainer, mark_complete = training.build_trainer, checkpoints.mark_complete
training.build_trainer = build_trainer_with_fault
checkpoints.mark_complete = mark_complete_or_die
recipe = Path(__file__).resolve().parents[1] / "recipes" / "finetune.py"
sys.argv = [str(recipe), *sys.argv[1:]]
runpy.run_path(str(recipe), run_name="__main__")
