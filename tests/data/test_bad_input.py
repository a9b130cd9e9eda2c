"""Bad input gets a clear message and exit status 2, before anything heavy is loaded."""

from __future__ import annotations

import pytest
from conftest import write_class_images


def run(finetune_main, capsys, args: list[str]) -> str:
    code = finetune_main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


def test_missing_folder(finetune_main, capsys, tmp_path):
    err = run(finetune_main, capsys, ["--train_dir", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "o")])
    assert "does not exist" in err and "nope" in err
    assert not (tmp_path / "o").exists()  # nothing left behind


def test_a_misspelt_folder_gets_the_close_one(finetune_main, capsys, tmp_path):
    write_class_images(tmp_path / "data" / "train", per_class=1)
    misspelt = tmp_path / "data" / "trian"
    err = run(finetune_main, capsys, ["--train_dir", str(misspelt), "--output_dir", str(tmp_path / "o")])
    assert f"--train_dir {misspelt} does not exist. Did you mean {tmp_path / 'data' / 'train'}?" in err


def test_a_folder_that_existed_stays(finetune_main, capsys, tmp_path):
    (tmp_path / "o").mkdir()
    err = run(finetune_main, capsys, ["--train_dir", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "o")])
    assert "does not exist" in err
    assert (tmp_path / "o").is_dir() and not any((tmp_path / "o").iterdir())


def test_folder_without_class_subfolders(finetune_main, capsys, tmp_path):
    (tmp_path / "flat").mkdir()
    write_class_images(tmp_path / "tmp", per_class=2)
    for image in (tmp_path / "tmp").rglob("*.png"):
        image.rename(tmp_path / "flat" / f"{image.parent.name}-{image.name}")
    err = run(finetune_main, capsys, ["--train_dir", str(tmp_path / "flat"), "--output_dir", str(tmp_path / "o")])
    assert "no class sub-folders" in err and "holds 6 images directly" in err


def test_class_folders_without_images(finetune_main, capsys, tmp_path):
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "notes.txt").write_text("not an image")
    err = run(finetune_main, capsys, ["--train_dir", str(tmp_path / "data"), "--output_dir", str(tmp_path / "o")])
    assert "holds no images" in err


def test_single_class(finetune_main, capsys, tmp_path):
    write_class_images(tmp_path / "data", per_class=3, classes={"only": (1, 2, 3)})
    err = run(finetune_main, capsys, ["--train_dir", str(tmp_path / "data"), "--output_dir", str(tmp_path / "o")])
    assert "single class" in err and "only" in err


def test_validation_class_unknown_to_training(finetune_main, capsys, tmp_path):
    write_class_images(tmp_path / "train", per_class=2, classes={"a": (0, 0, 0), "b": (9, 9, 9)})
    write_class_images(tmp_path / "val", per_class=2, classes={"a": (0, 0, 0), "zebra": (9, 9, 9)})
    args = ["--train_dir", str(tmp_path / "train"), "--validation_dir", str(tmp_path / "val")]
    err = run(finetune_main, capsys, [*args, "--output_dir", str(tmp_path / "o")])
    assert "zebra" in err


def test_unknown_model_offline_says_how_to_use_a_local_copy(finetune_main, capsys, image_folder, tmp_path):
    args = ["--train_dir", str(image_folder), "--output_dir", str(tmp_path / "o")]
    err = run(finetune_main, capsys, [*args, "--model_name_or_path", "nobody/no-such-model"])
    assert "nobody/no-such-model is not in the Hub cache" in err and "hf download nobody/no-such-model" in err
    assert "HF_HUB_OFFLINE is set" in err and not (tmp_path / "o").exists()


def test_default_model_offline_without_cache(finetune_main, capsys, image_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    args = ["--train_dir", str(image_folder), "--output_dir", str(tmp_path / "o")]
    err = run(finetune_main, capsys, [*args, "--cache_dir", str(tmp_path / "empty-cache")])
    assert "microsoft/resnet-101" in err and "hf download microsoft/resnet-101" in err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--dataset_name", "beans"], "choose one source"),
        (["--fp16", "--bf16"], "choose one mixed precision"),
        (["--per_device_train_batch_size", "0"], "must be positive"),
        (["--learning_rate", "-1"], "must be positive"),
        (["--max_steps", "0"], "--max_steps 0 would still train one step: give a positive number"),
        (["--train_val_split", "1.5"], "between 0 and 1"),
        (["--augmentation", "extreme"], "none, light, standard, heavy"),
        (["--push_to_hub"], "--hub_model_id"),
        (["--no_such_flag", "1"], "--no_such_flag"),
    ],
)
def test_contradicting_or_invalid_options(finetune_main, capsys, image_folder, tmp_path, extra, expected):
    err = run(finetune_main, capsys, ["--train_dir", str(image_folder), "--output_dir", str(tmp_path / "o"), *extra])
    assert expected in err


def test_a_folder_of_split_folders_says_which_to_give(finetune_main, capsys, tmp_path):
    write_class_images(tmp_path / "data" / "train", per_class=3)
    write_class_images(tmp_path / "data" / "validation", per_class=1, seed=1)
    err = run(finetune_main, capsys, ["--train_dir", str(tmp_path / "data"), "--output_dir", str(tmp_path / "o")])
    expected = f"--train_dir {tmp_path / 'data' / 'train'} --validation_dir {tmp_path / 'data' / 'validation'}."
    assert f"holds split folders, not class folders: give {expected}" in err


def test_validation_on_the_training_folder_is_refused(finetune_main, capsys, tmp_path):
    data = write_class_images(tmp_path / "data", per_class=3)
    argv = [
        "--train_dir",
        str(data),
        "--validation_dir",
        str(data / ".." / "data"),
        "--output_dir",
        str(tmp_path / "o"),
    ]
    err = run(finetune_main, capsys, argv)
    assert "is the training folder: validation must be on images the model does not train on" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("inside", ["train", "validation"])
def test_an_output_folder_inside_the_data_is_refused(finetune_main, capsys, tmp_path, inside):
    """The run's PNG plots there would be a class of images to the next run on the folder."""
    folders = {
        split: write_class_images(tmp_path / split, per_class=3, seed=i)
        for i, split in enumerate(("train", "validation"))
    }
    out = folders[inside] / "run"
    argv = [
        "--train_dir",
        str(folders["train"]),
        "--validation_dir",
        str(folders["validation"]),
        "--output_dir",
        str(out),
    ]
    err = run(finetune_main, capsys, argv)
    assert f"--output_dir {out} is inside --{inside}_dir {folders[inside]}" in err
    assert not out.exists()


def test_missing_output_dir(finetune_main, capsys, image_folder):
    err = run(finetune_main, capsys, ["--train_dir", str(image_folder)])
    assert "--output_dir" in err


def test_missing_training_data(finetune_main, capsys, tmp_path):
    err = run(finetune_main, capsys, ["--output_dir", str(tmp_path / "o")])
    assert "--train_dir" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["inspect", "{tmp}/nope"], "nope does not exist: give the folder of class sub-folders"),
        (["demo", "--epochs", "0", "--output_dir", "{tmp}/demo"], "--epochs must be positive, got 0."),
    ],
)
def test_commands_name_what_was_wrong(capsys, tmp_path, argv, expected):
    from conftest import run_cli

    _, err = run_cli(capsys, [arg.format(tmp=tmp_path) for arg in argv], expected_code=2)
    assert expected in err and "--train_dir" not in err
