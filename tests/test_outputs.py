"""The names in hf_resnet101/outputs.py are the files a run writes, and what is published leaves out the rest."""

from __future__ import annotations

import pytest

from hf_resnet101.outputs import LOCAL_ONLY, RUN_FILES, checkpoint_folder, checkpoint_folders


def test_checkpoint_folders_are_ordered_by_step_not_by_name(tmp_path):
    for step in (10, 2, 33):
        checkpoint_folder(tmp_path, step).mkdir()
    (tmp_path / "checkpoint-7").write_text("a file, not a checkpoint")
    (tmp_path / "checkpoint-last").mkdir()
    (tmp_path / "my-checkpoint-5").mkdir()
    assert [p.name for p in checkpoint_folders(tmp_path)] == ["checkpoint-2", "checkpoint-10", "checkpoint-33"]
    assert checkpoint_folders(tmp_path / "missing") == []


@pytest.mark.parametrize("evaluate_every_step", [True, False])
def test_a_finished_run_writes_exactly_the_named_files(finetune_main, image_folder, tiny_resnet, tmp_path,
                                                        evaluate_every_step):  # fmt: skip
    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--model_name_or_path", str(tiny_resnet), "--output_dir", str(out),
            "--max_steps", "2", "--save_strategy", "no"]  # fmt: skip
    if not evaluate_every_step:
        args += ["--eval_strategy", "no"]
    assert finetune_main(args) == 0
    written = {p.name for p in out.iterdir() if p.is_file()}
    assert written <= RUN_FILES, f"files outputs.py does not name: {sorted(written - RUN_FILES)}"
    optional = {"training_curves.png"}  # drawn from the evaluations' log history
    assert RUN_FILES - written <= optional, f"named but not written: {sorted(RUN_FILES - written)}"


def test_what_stays_local_is_never_pushed(trained_run):
    from hf_resnet101.publish.hub import files_to_push

    pushed = {in_repo for _, in_repo in files_to_push(trained_run["output"])}
    local = {p.name for p in trained_run["output"].iterdir() if p.name in LOCAL_ONLY}
    assert local, "the run's bookkeeping files are there to leave out"
    assert not pushed & LOCAL_ONLY
    assert {"README.md", "model.safetensors", "config.json", "card_inputs.json"} <= pushed
