"""The recipe end to end on tiny models: files, labels, pipeline, metrics, config files, data-loading workers,
torch.compile."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import CLASS_COLOURS, REPO_ROOT
from transformers import AutoConfig, AutoModelForImageClassification, pipeline

CLASS_NAMES = sorted(CLASS_COLOURS)


def read_splits(output_dir) -> list[dict]:
    with open(output_dir / "splits.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_train_dir_only_end_to_end(finetune_main, image_folder, tiny_resnet, tmp_path):
    out = tmp_path / "out"
    code = finetune_main(
        ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    )
    assert code == 0
    for name in ("model.safetensors", "config.json", "preprocessor_config.json", "README.md", "eval_results.json"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.bin")) or [p.name for p in out.glob("*.bin")] == ["training_args.bin"]

    config = AutoConfig.from_pretrained(out)
    assert [config.id2label[i] for i in range(3)] == CLASS_NAMES
    assert config.label2id == {name: i for i, name in enumerate(CLASS_NAMES)}

    rows = read_splits(out)
    validation = [row for row in rows if row["split"] == "validation"]
    assert {row["label"] for row in validation} == set(CLASS_NAMES)  # stratified: every class held out
    assert len(validation) == 3 * round(0.15 * 8)
    assert {row["split"] for row in rows} == {"train", "validation"}

    classifier = pipeline("image-classification", model=str(out))
    for row in validation:
        assert classifier(str(image_folder.parent / row["path"]))[0]["label"] in CLASS_NAMES  # relative to the data

    checked = json.loads((out / "pipeline_check.json").read_text())
    assert checked and all(row["pipeline"] == row["evaluation"] for row in checked)

    metrics = json.loads((out / "eval_results.json").read_text())
    for name in ("eval_accuracy", "eval_precision_macro", "eval_recall_macro", "eval_f1_macro"):
        assert 0.0 <= metrics[name] <= 1.0
    assert "eval_top_5_accuracy" not in metrics  # only 3 classes
    card = (out / "README.md").read_text()
    assert "pipeline_tag: image-classification" in card
    assert f"{metrics['eval_accuracy']:.4f}" in card
    assert "élan vital" in card
    # a two-stage test ResNet: the card gives its own size and none of ResNet-101's figures
    assert "44.5 M" not in card and "ViT-Base" not in card
    parameters = sum(p.numel() for p in AutoModelForImageClassification.from_pretrained(out).parameters())
    assert f"It is a ResNetForImageClassification with {parameters:,} parameters, not a ResNet-101" in " ".join(
        card.split()
    )


def test_product_page_defaults_are_in_effect(finetune_main, image_folder, tiny_resnet, tmp_path):
    out = tmp_path / "out"
    finetune_main(
        ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    )
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["train_batch_size"] == 4
    # 21 training images at batch 4 -> 6 steps, each followed by an evaluation.
    assert state["global_step"] == 6
    evaluations = [entry for entry in state["log_history"] if "eval_accuracy" in entry]
    assert [entry["step"] for entry in evaluations][:6] == [1, 2, 3, 4, 5, 6]


def test_validation_dir_is_used_as_is(finetune_main, train_and_validation_folders, tiny_resnet, tmp_path):
    train, validation = train_and_validation_folders
    out = tmp_path / "out"
    args = ["--train_dir", str(train), "--validation_dir", str(validation), "--output_dir", str(out)]
    assert finetune_main([*args, "--model_name_or_path", str(tiny_resnet), "--eval_strategy", "no"]) == 0
    rows = read_splits(out)
    assert sum(row["split"] == "train" for row in rows) == 24
    assert sum(row["split"] == "validation" for row in rows) == 9
    # Relative to the folder holding both (published with the model: no local directory names).
    assert all(row["path"].startswith("validation/") for row in rows if row["split"] == "validation")
    assert all(row["path"].startswith("train/") for row in rows if row["split"] == "train")
    # The split fraction is not used: not on the card, and a later other value is the same run
    hyperparameters = json.loads((out / "card_inputs.json").read_text())["hyperparameters"]
    assert "train_val_split" not in hyperparameters and "eval_steps" not in hyperparameters
    assert hyperparameters["num_train_epochs"] == 1 and "max_steps" not in hyperparameters  # the length as given
    again = [*args, "--model_name_or_path", str(tiny_resnet), "--eval_strategy", "no", "--train_val_split", "0.5"]
    assert finetune_main(again) == 0


@pytest.mark.parametrize("family", ["resnet", "timm", "vit"])
def test_each_model_family_keeps_label_names(family, finetune_main, image_folder, tiny_models, tmp_path):
    out = tmp_path / family
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--eval_strategy", "no"]
    if family == "timm":
        # timm's test_resnet downsamples 32x32 to 1x1, where BatchNorm cannot train on a last batch of one.
        args += ["--image_size", "64"]
    assert finetune_main([*args, "--model_name_or_path", str(tiny_models[family])]) == 0
    classifier = pipeline("image-classification", model=str(out))
    image = next(image_folder.glob("cat/*.png"))
    labels = [result["label"] for result in classifier(str(image), top_k=3)]
    assert sorted(labels) == CLASS_NAMES


def test_yaml_config_with_command_line_override(finetune_main, image_folder, tiny_resnet, tmp_path):
    config = tmp_path / "run.yaml"
    out = tmp_path / "out"
    config.write_text(
        yaml.safe_dump(
            {
                "train_dir": str(image_folder),
                "output_dir": str(out),
                "model_name_or_path": str(tiny_resnet),
                "per_device_train_batch_size": 8,
                "learning_rate": 1e-4,
                "eval_strategy": "epoch",
            }
        )
    )
    assert finetune_main(["--config", str(config), "--per_device_train_batch_size", "2"]) == 0
    args = json.loads((out / "trainer_state.json").read_text())
    assert args["train_batch_size"] == 2  # the command line wins over the file
    readme = (out / "README.md").read_text()
    assert "| learning_rate | 0.0001 |" in readme  # the file wins over the default


def test_yaml_config_unknown_key_is_an_error(finetune_main, image_folder, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"train_dir": str(image_folder), "learnig_rate": 1e-4}))
    assert finetune_main(["--config", str(config), "--output_dir", str(tmp_path / "out")]) == 2
    assert "learnig_rate" in capsys.readouterr().err


def test_a_model_folder_that_does_not_exist_is_an_error_before_anything_is_written(
    finetune_main, image_folder, tmp_path, capsys
):
    out = tmp_path / "out"
    missing = tmp_path / "no-such-model"
    argv = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(missing)]
    assert finetune_main(argv) == 2
    assert f"Model folder {missing} does not exist: give a Hub model id" in capsys.readouterr().err
    assert not out.exists()


def test_a_hub_model_not_in_the_cache_offline_is_an_error_before_anything_is_written(
    finetune_main, image_folder, tmp_path, capsys
):
    """It was found missing only once the run had begun: its output folder kept a lock-less start of a run."""
    out = tmp_path / "out"
    argv = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", "someone/not-cached"]
    assert finetune_main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "someone/not-cached is not in the Hub cache" in err and "and HF_HUB_OFFLINE is set" in err
    assert "`hf download someone/not-cached --local-dir DIR`, then --model_name_or_path DIR" in err
    assert not out.exists()


def test_shipped_configs_parse(tmp_path):
    from hf_resnet101.config.options import DataArguments, FinetuneTrainingArguments, ModelArguments
    from hf_resnet101.config.parser import ConfigParser

    configs = sorted((REPO_ROOT / "recipes" / "configs").glob("*.yaml"))
    assert len(configs) >= 3
    for path in configs:
        assert path.read_text().startswith("#"), f"{path.name} needs its launch command in a header comment"
        assert "accelerate launch recipes/finetune.py --config" in path.read_text()
        parser = ConfigParser((DataArguments, ModelArguments, FinetuneTrainingArguments))
        _, _, training_args = parser.parse_args_and_config(
            ["--config", str(path), "--train_dir", str(tmp_path), "--output_dir", str(tmp_path / "out")]
        )
        assert 1e-5 <= training_args.learning_rate <= 1e-4
        # What suits one machine (workers, precision) follows the machine the run is on, not the recipe.
        pinned = set(yaml.safe_load(path.read_text())) & {"dataloader_num_workers", "fp16", "bf16", "precision"}
        assert not pinned, f"{path.name} pins {sorted(pinned)}"


def test_accelerate_launch_subprocess(image_folder, tiny_resnet, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--cpu",
        str(REPO_ROOT / "recipes" / "finetune.py"),
        "--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet),
        "--eval_strategy", "epoch",
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    # No precision asked for: auto picks bf16 autocast on a CPU with native bf16, fp32 on one without.
    assert "precision: bf16 autocast on CPU (auto" in result.stderr or "precision: fp32 on CPU (auto" in result.stderr
    # What a user sees: the bars of work that takes a while, named for what they do; not transformers' bars over
    # the weights at every save and at the pipeline check's load.
    assert "Preparing validation images (once)" in result.stderr
    assert "Preparing the card's training sample (once)" in result.stderr
    assert "Writing model shards" not in result.stderr and "Loading weights" not in result.stderr
    labels = [
        r["label"] for r in pipeline("image-classification", model=str(out))(str(next(image_folder.rglob("*.png"))))
    ]
    assert set(labels) <= set(CLASS_NAMES)


def test_dataset_name_with_other_column_names(finetune_main, image_folder, tiny_resnet, tmp_path, caplog):
    """--dataset_name on a local dataset repository (parquet files, as on the Hub); no network needed."""
    from datasets import Dataset, Image

    paths = sorted(str(p) for p in image_folder.rglob("*.png"))
    species = [p.split("/")[-2] for p in paths]
    table = Dataset.from_dict({"photo": paths, "species": species, "extra": list(range(len(paths)))})
    repo = tmp_path / "birds-repo"
    table.cast_column("photo", Image()).to_parquet(str(repo / "data" / "train-00000-of-00001.parquet"))
    out = tmp_path / "out"
    args = ["--dataset_name", str(repo), "--image_column_name", "photo", "--label_column_name", "species"]
    args += ["--output_dir", str(out), "--model_name_or_path", str(tiny_resnet), "--eval_strategy", "no"]
    assert finetune_main(args) == 0
    config = AutoConfig.from_pretrained(out)
    assert sorted(config.label2id) == CLASS_NAMES
    assert {row["split"] for row in read_splits(out)} == {"train", "validation"}
    for published in ("README.md", "card_inputs.json"):  # a local dataset is named, its path on this machine not
        text = (out / published).read_text()
        assert str(tmp_path) not in text and "birds-repo" in text, published

    # A validation split without one class keeps the training split's label ids (each split encoded alone had not)
    kept = [i for i, name in enumerate(species) if name != CLASS_NAMES[0]]
    validation = table.select(kept).cast_column("photo", Image())
    validation.to_parquet(str(repo / "data" / "validation-00000-of-00001.parquet"))
    validation.to_parquet(str(repo / "data" / "test-00000-of-00001.parquet"))
    assert finetune_main([*args, "--overwrite_output_dir"]) == 0
    assert "also has the split(s) test, which training leaves alone" in caplog.text
    counts = json.loads((out / "data_report.json").read_text())["images_per_class"]["validation"]
    assert counts == {name: species.count(name) * (name != CLASS_NAMES[0]) for name in CLASS_NAMES}


def run_with_two_workers(finetune_main, image_folder, tiny_resnet, tmp_path, monkeypatch):
    """A short run with two data workers and evaluation every step; returns the Trainer it built, still referenced."""
    import hf_resnet101.train.run as training

    kept = []
    build = training.build_trainer
    monkeypatch.setattr(training, "build_trainer", lambda *a, **k: kept.append(build(*a, **k)) or kept[-1])
    args = [
        "--train_dir", str(image_folder), "--model_name_or_path", str(tiny_resnet),
        "--output_dir", str(tmp_path / "o"), "--max_steps", "2", "--eval_steps", "1", "--dataloader_num_workers", "2",
    ]  # fmt: skip
    assert finetune_main(args) == 0
    return kept[-1]


def test_no_worker_process_outlives_the_run(finetune_main, image_folder, tiny_resnet, tmp_path, monkeypatch):
    """Even while the Trainer is still referenced (as by a notebook or a benchmark), the run's persistent data
    workers, training's and every evaluation's, are stopped when it returns."""
    import multiprocessing

    assert run_with_two_workers(finetune_main, image_folder, tiny_resnet, tmp_path, monkeypatch) is not None
    assert multiprocessing.active_children() == []


def test_evaluation_reads_prepared_tensors_in_process(finetune_main, image_folder, tiny_resnet, tmp_path, monkeypatch):
    """With training workers asked for, evaluation and prediction still load in the training process (their
    tensors are prepared once), the evaluation loader is made once, and the training loader keeps its workers."""
    trainer = run_with_two_workers(finetune_main, image_folder, tiny_resnet, tmp_path, monkeypatch)
    evaluation = trainer.get_eval_dataloader()
    assert evaluation.num_workers == 0 and trainer.get_eval_dataloader() is evaluation
    assert trainer.get_test_dataloader(trainer.eval_dataset).num_workers == 0
    assert trainer.get_train_dataloader().num_workers == 2
    assert trainer.args.dataloader_num_workers == 2 and trainer.args.dataloader_persistent_workers


@pytest.mark.slow
def test_torch_compile_run(finetune_main, image_folder, tiny_resnet, tmp_path):
    """The Trainer's --torch_compile works with the package's model preparation (channels_last, collate)."""
    out = tmp_path / "out"
    args = [
        "--train_dir", str(image_folder), "--model_name_or_path", str(tiny_resnet), "--output_dir", str(out),
        "--max_steps", "3", "--eval_strategy", "no", "--torch_compile",
    ]  # fmt: skip
    assert finetune_main(args) == 0
    from safetensors.torch import load_file

    assert load_file(out / "model.safetensors").keys() == load_file(tiny_resnet / "model.safetensors").keys()
    assert (out / "pipeline_check.json").is_file()
