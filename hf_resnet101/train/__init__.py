"""The training run: its phases, the Trainer, callbacks and monitors, checkpoints, recovery from out-of-memory,
interrupts and failed writes, the run's summary and its final evaluation."""
