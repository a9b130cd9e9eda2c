"""Nothing private or false is published: relative paths, an honest base model, a token checked before training,
no inherited custom code, safe class names, ignored folders said."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import REPO_ROOT, run_cli, save_tiny_resnet, serving_local_hub, write_class_images
from transformers import pipeline

import hf_resnet101.commands.demo as demo_module

TOKEN = "hf_PUBLISHINGtestTokenWrite0123456789"
READ_TOKEN = "hf_PUBLISHINGtestTokenReadOnly012345"
REPO_ID = "user/published"


@pytest.fixture
def local_hub(monkeypatch, tmp_path):
    with serving_local_hub(monkeypatch, tmp_path, TOKEN) as hub:
        yield hub


def card_metadata(text: str) -> dict:
    return yaml.safe_load(text.split("---")[1])


def read_splits(output_dir) -> list[dict]:
    with open(output_dir / "splits.csv", newline="") as f:
        return list(csv.DictReader(f))


# -- item 5: local paths ----------------------------------------------------------------------------------------


def test_splits_csv_holds_paths_relative_to_the_data_folder(finetune_main, image_folder, tiny_resnet, tmp_path):
    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    assert finetune_main([*args, "--eval_strategy", "no"]) == 0
    rows = read_splits(out)
    assert len(rows) == 24
    for row in rows:
        assert not os.path.isabs(row["path"]) and str(tmp_path) not in row["path"]
        assert row["path"].startswith(f"train/{row['label']}/")  # the data folder's own name, CLASS, FILE
        assert (image_folder.parent / row["path"]).is_file()
    assert str(tmp_path) not in (out / "splits.csv").read_text()


def test_splits_csv_names_no_folder_above_unrelated_train_and_validation_folders(finetune_main, tiny_resnet, tmp_path):
    train = write_class_images(tmp_path / "alice" / "private" / "train", per_class=6, seed=1)
    validation = write_class_images(tmp_path / "mnt" / "shared" / "val", per_class=2, seed=2)
    out = tmp_path / "out"
    args = ["--train_dir", str(train), "--validation_dir", str(validation), "--output_dir", str(out)]
    assert finetune_main([*args, "--model_name_or_path", str(tiny_resnet), "--eval_strategy", "no"]) == 0
    rows = read_splits(out)
    assert {row["path"].split("/")[0] for row in rows if row["split"] == "train"} == {"train"}
    assert {row["path"].split("/")[0] for row in rows if row["split"] == "validation"} == {"val"}
    text = (out / "splits.csv").read_text()
    assert "alice" not in text and "private" not in text and "mnt" not in text and "shared" not in text


def test_pushed_files_name_no_local_path_and_no_unknown_base_model(
    finetune_main, image_folder, tiny_resnet, local_hub, tmp_path
):
    (image_folder / "cat" / "broken.png").write_bytes(b"not an image")  # listed in data_report.json
    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    push = ["--push_to_hub", "--hub_model_id", REPO_ID, "--hub_token", TOKEN]
    assert finetune_main([*args, *push, "--eval_strategy", "no"]) == 0

    pushed = local_hub.state.repos[REPO_ID].head.files
    for local in (str(tmp_path), str(tiny_resnet), str(image_folder)):
        leaks = [name for name, stored in pushed.items() if local.encode() in stored.content]
        assert leaks == [], f"{local} published in {leaks}"
    # The files that name every image stay local: file names can carry personal data.
    assert "data_report.json" not in pushed and "splits.csv" not in pushed
    assert not [name for name, stored in pushed.items() if b"broken.png" in stored.content]
    assert "train/cat/broken.png" in (out / "data_report.json").read_text()

    card = pushed["README.md"].content.decode()
    assert "base_model" not in card_metadata(card)  # the tiny model records no Hub id: none rather than a path
    assert "huggingface.co//" not in card and "github.com/hf-resnet101" not in card
    assert "local checkpoint whose Hub origin was not recorded" in card
    # The card is still usable as published.
    assert 'pipeline("image-classification", model="user/published")' in card


def test_base_model_comes_from_the_checkpoint_record_or_the_option(finetune_main, image_folder, tmp_path, capsys):
    model = save_tiny_resnet(tmp_path / "downloaded")
    # What `hf download microsoft/resnet-50 --local-dir DIR` brings: the Hub's card with its metadata.
    (model / "README.md").write_text("---\nlicense: apache-2.0\nbase_model: microsoft/resnet-50\n---\n# ResNet-50\n")
    args = ["--train_dir", str(image_folder), "--model_name_or_path", str(model), "--eval_strategy", "no"]

    assert finetune_main([*args, "--output_dir", str(tmp_path / "recorded")]) == 0
    card = (tmp_path / "recorded" / "README.md").read_text()
    assert card_metadata(card)["base_model"] == "microsoft/resnet-50"
    assert "[microsoft/resnet-50](https://huggingface.co/microsoft/resnet-50) fine-tuned" in card
    assert str(tmp_path) not in card

    assert card_metadata(card)["license"] == "apache-2.0"  # the base model's, as its card records it

    given = ["--base_model_id", "timm/resnet101.a1h_in1k", "--output_dir", str(tmp_path / "given")]
    assert finetune_main([*args, *given, "--license", "cc-by-nc-4.0"]) == 0
    given_card = card_metadata((tmp_path / "given" / "README.md").read_text())
    assert given_card["base_model"] == "timm/resnet101.a1h_in1k" and given_card["license"] == "cc-by-nc-4.0"
    # A base model whose license is recorded nowhere here: "other", not a license guessed for it.
    unrecorded = [
        "--model_name_or_path",
        str(save_tiny_resnet(tmp_path / "plain")),
        "--output_dir",
        str(tmp_path / "u"),
    ]
    assert finetune_main([*args, *unrecorded]) == 0
    assert card_metadata((tmp_path / "u" / "README.md").read_text())["license"] == "other"

    capsys.readouterr()
    assert finetune_main([*args, "--base_model_id", str(model), "--output_dir", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "--base_model_id takes a Hub id" in err and "Traceback" not in err


# -- issue 13 item 2: the offline demo says it started from random weights -----------------------------------------


def test_offline_demo_card_and_summary_say_random_initialisation(monkeypatch, tmp_path, capsys, caplog):
    # The demo's own path with a small random ResNet in place of the 44.5 M-parameter one, on a third of the digits.
    monkeypatch.setattr(demo_module, "build_random_resnet101", lambda names: tiny_random_resnet(names))
    write_digits = demo_module.write_digits_image_folder

    def fewer_digits(root):
        folder = write_digits(root)
        for path in sorted(folder.rglob("*.png"))[::3]:
            path.unlink()
        return folder

    monkeypatch.setattr(demo_module, "write_digits_image_folder", fewer_digits)
    run_cli(capsys, ["demo", "--output_dir", str(tmp_path / "demo"), "--epochs", "1"])
    card = (tmp_path / "demo" / "model" / "README.md").read_text()
    metadata = card_metadata(card)
    assert "base_model" not in metadata
    assert "trained from random initialisation, not fine-tuned" in card
    assert "microsoft/resnet-101" not in card.split("## How to use")[0]
    assert "none (random initialisation)" in card  # the hyperparameter table's model_name_or_path
    summary = next(line for line in caplog.text.splitlines() if line.strip().startswith("model: "))
    assert "trained from random initialisation, not fine-tuned" in summary
    inputs = json.loads((tmp_path / "demo" / "model" / "card_inputs.json").read_text())
    assert inputs["random_init"] is True and inputs["base_model"] is None


def tiny_random_resnet(label_names):
    from transformers import ResNetConfig, ResNetForImageClassification

    from hf_resnet101.modeling import label_mappings

    id2label, label2id = label_mappings(label_names)
    config = ResNetConfig(
        depths=[1, 1], hidden_sizes=[16, 32], embedding_size=8, layer_type="bottleneck", num_labels=len(label_names)
    )
    config.id2label, config.label2id = id2label, label2id
    return ResNetForImageClassification(config)


# -- item 6: the token is checked before any data is loaded ----------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "repo_id", "expected"),
    [
        ("hf_NotAKnownToken00000000000000000000", REPO_ID, "rejected the token (401"),
        (READ_TOKEN, REPO_ID, "is read-only"),
        (TOKEN, "someone-else-org/model", "not a member of 'someone-else-org'"),
        (TOKEN, "readers-org/model", "read role in 'readers-org'"),
        ("hf_FineGrainedOtherNamespace0000000000", REPO_ID, "fine-grained token"),
    ],
)
def test_a_token_that_cannot_push_stops_before_the_data_loads(
    finetune_main, image_folder, tiny_resnet, local_hub, tmp_path, capsys, token, repo_id, expected
):
    local_hub.state.add_token(READ_TOKEN, "read")
    scoped = [{"entity": {"type": "org", "name": "user-org"}, "permissions": ["repo.content.read", "repo.write"]}]
    local_hub.state.add_token("hf_FineGrainedOtherNamespace0000000000", "fineGrained", scoped)
    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    code = finetune_main([*args, "--push_to_hub", "--hub_model_id", repo_id, "--hub_token", token])
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err and "Nothing was trained yet" in err.replace("nothing was", "Nothing was")
    assert "Traceback" not in err and token not in err
    assert "Scanning images" not in err and not (out / "data_report.json").exists()  # no data was touched
    assert local_hub.state.requests == [("GET", "/api/whoami-v2")]  # one cheap request, no repo created
    assert local_hub.state.repos == {}


def test_a_fine_grained_token_with_write_access_pushes(finetune_main, image_folder, tiny_resnet, local_hub, tmp_path):
    token = "hf_FineGrainedWriteOnUser000000000000"
    scoped = [{"entity": {"type": "user", "name": "user"}, "permissions": ["repo.content.read", "repo.write"]}]
    local_hub.state.add_token(token, "fineGrained", scoped)
    args = ["--train_dir", str(image_folder), "--output_dir", str(tmp_path / "out"), "--eval_strategy", "no"]
    push = ["--push_to_hub", "--hub_model_id", REPO_ID, "--hub_token", token]
    assert finetune_main([*args, "--model_name_or_path", str(tiny_resnet), *push]) == 0
    assert "model.safetensors" in local_hub.state.repos[REPO_ID].head.files
    assert local_hub.state.requests[0] == ("GET", "/api/whoami-v2")


# -- item 8: no inherited custom code ---------------------------------------------------------------------------------


def test_custom_code_of_the_base_model_is_not_inherited(image_folder, tmp_path):
    model = save_tiny_resnet(tmp_path / "with-custom-code")
    for name, auto_map in (
        ("config.json", {"AutoConfig": "custom.MyConfig", "AutoModelForImageClassification": "custom.MyModel"}),
        ("preprocessor_config.json", {"AutoImageProcessor": "custom.MyProcessor"}),
    ):
        data = json.loads((model / name).read_text())
        (model / name).write_text(json.dumps(data | {"auto_map": auto_map}))
    (model / "custom.py").write_text("raise SystemExit('the custom code ran')\n")
    out = tmp_path / "out"
    command = [sys.executable, str(REPO_ROOT / "recipes" / "finetune.py"), "--train_dir", str(image_folder),
               "--output_dir", str(out), "--model_name_or_path", str(model), "--eval_strategy", "no",
               "--precision", "fp32"]  # fmt: skip
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_RESNET101_CACHE": str(tmp_path / "cache")}
    # stdin closed and a time limit: a "run the custom code? [y/N]" prompt fails the run instead of hanging it.
    result = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600, env=env, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Do you wish to run the custom code" not in result.stdout + result.stderr
    assert "auto_map" in result.stderr  # the run says it dropped the reference
    for name in ("config.json", "preprocessor_config.json"):
        assert "auto_map" not in json.loads((out / name).read_text()), name
    assert not (out / "custom.py").exists()
    assert json.loads((out / "pipeline_check.json").read_text())


# -- item 9: control characters in class names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_name", ["two\nlines", "tab\there", "red\x1b[31mtext", "---\nlicense: other\ntags: [evil]\n---"]
)
def test_control_characters_in_a_class_name_stop_with_the_folder_named(
    finetune_main, tiny_resnet, tmp_path, capsys, bad_name
):
    data = write_class_images(tmp_path / "data", per_class=4, classes={"cat": (200, 60, 40), bad_name: (40, 70, 200)})
    out = tmp_path / "out"
    args = ["--train_dir", str(data), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    assert finetune_main(args) == 2
    err = capsys.readouterr().err
    assert repr(str(data / bad_name)) in err  # the folder named, escaped so it shows what it holds
    assert bad_name not in err and "\x1b" not in err and "Traceback" not in err
    assert "Rename these folders" in err
    assert not (out / "README.md").exists()
    run_cli(capsys, ["inspect", str(data)], expected_code=2)


def test_control_characters_in_a_dataset_label_stop_the_run(finetune_main, tiny_resnet, tmp_path, capsys):
    data = write_class_images(tmp_path / "data", per_class=4, classes={"cat": (200, 60, 40), "red\x1b[31m": (9, 9, 9)})
    out = tmp_path / "out"
    args = ["--dataset_name", str(data), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    assert finetune_main(args) == 2
    err = capsys.readouterr().err
    assert "'red\\x1b[31m'" in err and "\x1b" not in err and "Traceback" not in err
    assert not (out / "README.md").exists()


def test_class_names_like_yaml_or_table_syntax_keep_the_card_whole(finetune_main, tiny_resnet, tmp_path):
    classes = {"license: other": (200, 60, 40), "a | b": (40, 70, 200), "- item": (50, 190, 60)}
    data = write_class_images(tmp_path / "data", per_class=6, classes=classes)
    out = tmp_path / "out"
    args = ["--train_dir", str(data), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    assert finetune_main([*args, "--eval_strategy", "no", "--license", "mit"]) == 0
    card = (out / "README.md").read_text()
    assert card_metadata(card)["license"] == "mit"
    lines = card.splitlines()
    rows = [i for i, line in enumerate(lines) if line.startswith("| a \\| b |")]
    assert len(rows) == 2  # the per-class and the data tables, the pipe escaped
    for i in rows:
        header = next(lines[j] for j in range(i, 0, -1) if lines[j].startswith("| class |"))
        assert lines[i].replace("\\|", "").rstrip().count("|") == header.rstrip().count("|")  # same columns
    labels = [r[0]["label"] for r in pipeline("image-classification", model=str(out))(
        [str(p) for p in sorted((data / "a | b").iterdir())][:2])]  # fmt: skip
    assert set(labels) <= set(classes)


# -- item 10: dot folders -------------------------------------------------------------------------------------------


def test_dot_folders_are_listed_as_ignored(finetune_main, image_folder, tiny_resnet, tmp_path, capsys, caplog):
    for hidden in (".hidden", "..dots"):
        write_class_images(image_folder, per_class=2, classes={hidden: (90, 90, 90)})
    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    assert finetune_main([*args, "--eval_strategy", "no"]) == 0
    assert "are not classes and are ignored: ..dots, .hidden" in caplog.text
    assert "folders ignored (names starting with '.' are not classes)" in caplog.text  # the run summary
    report = json.loads((out / "data_report.json").read_text())
    assert report["ignored_folders"] == ["train/..dots", "train/.hidden"]
    assert set(report["images_per_class"]["train"]) == {"Blue Jay", "cat", "élan vital"}

    out_text, _ = run_cli(capsys, ["inspect", str(image_folder)])
    ignored = next(line for line in out_text.splitlines() if "folders ignored" in line)
    assert "..dots" in ignored and ".hidden" in ignored
