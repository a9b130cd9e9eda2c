"""The model card template ships in the package and renders metadata the Hub reads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile

import pytest
import yaml
from conftest import REPO_ROOT, run_cli

from hf_resnet101.errors import UsageError
from hf_resnet101.publish.card import CardInputs, render_model_card, template_path, write_model_card


def test_template_is_the_top_level_file():
    assert template_path().read_text() == (REPO_ROOT / "model_card_template.md").read_text()


def test_wheel_ships_template_and_metric_modules(tmp_path):
    """Built from a clean copy of the sources: a build/ folder left in a working copy would add stale modules."""
    source = tmp_path / "source"
    shutil.copytree(
        REPO_ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__")
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=source,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "hf_resnet101/publish/model_card_template.md" in names
    assert "hf_resnet101/evaluation/metric_modules/top_k_accuracy/top_k_accuracy.py" in names
    template = zipfile.ZipFile(wheel).read("hf_resnet101/publish/model_card_template.md").decode()
    assert template == (REPO_ROOT / "model_card_template.md").read_text()
    shipped = {name for name in names if name.startswith("hf_resnet101/") and name.endswith(".py")}
    sources = {str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "hf_resnet101").rglob("*.py")}
    assert shipped == sources, f"modules not in the sources: {sorted(shipped - sources)}"


def card_inputs(**overrides) -> CardInputs:
    values = dict(
        model_name="resnet101-birds",
        repo_id="me/resnet101-birds",
        base_model="microsoft/resnet-101",
        label_names=["Blue Jay", "cat"],
        images_per_class={"train": {"Blue Jay": 50, "cat": 50}, "validation": {"Blue Jay": 8, "cat": 8}},
        eval_metrics={"accuracy": 0.8125, "f1_macro": 0.8, "loss": 0.3},
        hyperparameters={"learning_rate": 5e-5},
        precision="fp16 mixed precision on CUDA",
        devices="1 x cuda:0 (NVIDIA H100)",
        train_runtime_s=3725,
        per_class={"precision": [0.9, 0.75], "recall": [0.75, 0.875], "f1": [0.8182, 0.8077], "support": [8, 8]},
        confusion_matrix=[[6, 2], [1, 7]],
        train_accuracy=0.85,
        train_accuracy_images=16,
        architecture="ResNetForImageClassification",
        resnet101=True,
        parameters=42_504_258,
    )
    return CardInputs(**(values | overrides))


def test_rendered_card_metadata():
    text = str(render_model_card(card_inputs()))
    metadata = yaml.safe_load(text.split("---")[1])
    assert metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == "image-classification"
    assert metadata["base_model"] == "microsoft/resnet-101"
    results = metadata["model-index"][0]["results"]
    assert {m["type"]: m["value"] for r in results for m in r["metrics"]} == {"accuracy": 0.8125, "f1_macro": 0.8}
    assert 'pipeline("image-classification", model="me/resnet101-birds")' in text
    assert "1 h 02 min 05 s" in text
    assert "| accuracy | 0.8125 |" in text
    assert "| Blue Jay | 0.9000 | 0.7500 | 0.8182 | 8 |" in text
    assert "| Blue Jay | 50 | 8 |" in text
    assert "1 x cuda:0 (NVIDIA H100)" in text
    assert "Overfitting" not in text  # 85% against 81%: a small gap


def test_card_states_only_measured_speed_with_its_device():
    text = " ".join(str(render_model_card(card_inputs())).split())
    assert "2-3x" not in text  # the product page's claim, reversed on an H200
    assert "1.9-2.6x as many images per second on a 2-core AMD EPYC CPU" in text
    assert "0.92x as many through a plain fp16 `pipeline` on an NVIDIA H200, where ViT-Base is faster" in text


def test_a_resnet101_card_gives_the_models_own_parameter_count():
    """44.5 M is ResNet-101 with ImageNet's 1,000-class head; a 2-class fine-tune has 42.5 M."""
    text = " ".join(str(render_model_card(card_inputs())).split())
    assert "ResNet-101 is a 42.5 M-parameter convolutional network" in text and "44.5 M" not in text


def test_one_unusable_file_is_one_file():
    text = " ".join(str(render_model_card(card_inputs(unusable_files=1))).split())
    assert "1 unusable file (unreadable or not images) was left out" in text
    text = " ".join(str(render_model_card(card_inputs(unusable_files=3))).split())
    assert "3 unusable files (unreadable or not images) were left out" in text


def test_card_of_another_model_makes_no_resnet101_claims():
    # A ResNet-50 (or ViT, or timm) fine-tune: ResNet-101's size, speed and data advice are not this model's.
    inputs = card_inputs(base_model="microsoft/resnet-50", resnet101=False, parameters=23_512_130)
    text = " ".join(str(render_model_card(inputs)).split())
    assert "44.5 M" not in text and "ViT-Base" not in text and "ResNet-50 is often as good" not in text
    assert "It is a ResNetForImageClassification with 23.5 M parameters, not a ResNet-101" in text
    assert "hf_resnet101 has not measured its speed" in text
    text = " ".join(str(render_model_card(card_inputs(resnet101=False, parameters=None))).split())
    assert "It is a ResNetForImageClassification, not a ResNet-101" in text
    # card_inputs.json of a run before the model's family was recorded: no claim either way
    text = " ".join(str(render_model_card(card_inputs(resnet101=None, parameters=None))).split())
    assert "44.5 M" not in text and "not a ResNet-101" not in text
    assert "Intended for sorting images like the training data into the classes above. The model only knows" in text


def test_weights_chosen_on_the_validation_split_are_said_to_be():
    selection = {"step": 40, "steps": 120, "metric": "accuracy", "evaluations": 12}
    text = " ".join(str(render_model_card(card_inputs(selection=selection))).split())
    assert "the weights of the run's best evaluation on this split by accuracy (step 40 of 120, the best of 12" in text
    assert "scores a little lower on new ones" in text
    assert "best evaluation" not in str(render_model_card(card_inputs()))


def test_card_names_the_size_tier():
    assert "**tiny** tier (under 2,000 images" in str(render_model_card(card_inputs()))
    many = {"train": {"Blue Jay": 4000, "cat": 4000}, "validation": {"Blue Jay": 500, "cat": 500}}
    assert "**medium** tier (5,000-20,000 images" in str(render_model_card(card_inputs(images_per_class=many)))
    # The tier the run's preset used, by training images: 1,900 of them are "tiny" though 2,100 in all
    near = {"train": {"Blue Jay": 950, "cat": 950}, "validation": {"Blue Jay": 100, "cat": 100}}
    text = " ".join(str(render_model_card(card_inputs(images_per_class=near))).split())
    assert "2100 images in all, 1900 for training: by those, the product page's **tiny** tier" in text


def test_tags_name_resnet_only_for_a_resnet():
    assert "resnet" in card_metadata_of(card_inputs())["tags"]
    assert "resnet" not in card_metadata_of(card_inputs(resnet101=False))["tags"]


def card_metadata_of(inputs: CardInputs) -> dict:
    return yaml.safe_load(str(render_model_card(inputs)).split("---")[1])


def test_large_train_validation_gap_earns_the_page_advice():
    text = str(render_model_card(card_inputs(train_accuracy=1.0)))
    assert "**Overfitting.** Signs of overfitting: training accuracy (100.0% on 16" in text
    assert "18.8 percentage points above validation accuracy" in text
    assert "microsoft/resnet-50" in text and "1e-5" in text
    assert "ResNet-101 has a lot of capacity" in text
    other = str(render_model_card(card_inputs(train_accuracy=1.0, resnet101=False)))
    assert "the model has a lot of capacity" in other and "ResNet-101 has" not in other


def test_overfitting_monitor_events_earn_the_note_too():
    event = {"step": 40, "train_loss": 0.05, "eval_loss": 0.9, "eval_accuracy": 0.7}
    text = str(render_model_card(card_inputs(overfitting_events=[event])))
    assert "from step 40 the validation loss (0.9) stayed well above the training loss (0.05)" in text


def test_card_rerenders_from_a_saved_folder(tmp_path):
    inputs = card_inputs()
    inputs.save(tmp_path)
    history = [{"step": 1, "loss": 1.0}, {"step": 1, "eval_loss": 0.9, "eval_accuracy": 0.5}]
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    path = write_model_card(tmp_path, repo_id="someone/else")
    text = path.read_text()
    assert "![Confusion matrix on the validation split](confusion_matrix.png)" in text
    assert "(training_curves.png)" in text
    assert 'model="someone/else"' in text
    for name in ("confusion_matrix.png", "training_curves.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


def test_card_without_inputs_says_what_to_give(tmp_path):
    with pytest.raises(UsageError, match="card_inputs.json"):
        write_model_card(tmp_path)


def test_card_of_an_older_run_with_a_local_base_model_publishes_no_path(tmp_path, capsys):
    # card_inputs.json as runs before the base-model check wrote it: the local folder the model was loaded from.
    local = "/home/someone/models/resnet-101-local"
    inputs = card_inputs(base_model=local, hyperparameters={"learning_rate": 5e-5, "model_name_or_path": local})
    inputs.save(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    run_cli(capsys, ["card", str(tmp_path)])
    text = (tmp_path / "README.md").read_text()
    assert local not in text and "huggingface.co//" not in text
    assert "base_model" not in yaml.safe_load(text.split("---")[1])
    assert "local checkpoint whose Hub origin was not recorded" in text
    assert "| model_name_or_path | a local folder (origin not recorded) |" in text


def test_card_of_random_initial_weights_says_so():
    text = str(render_model_card(card_inputs(random_init=True, architecture="ResNetForImageClassification")))
    assert "base_model" not in yaml.safe_load(text.split("---")[1])
    assert "ResNetForImageClassification **trained from random initialisation, not fine-tuned**" in text
    assert "fine-tuned for image classification" not in text


def test_a_class_without_validation_images_is_not_measured_rather_than_zero():
    # scikit-learn's support comes back as floats when every prediction is wrong; a count is shown as one.
    per_class = {"precision": [0.9, 0.0], "recall": [1.0, 0.0], "f1": [0.947, 0.0], "support": [8.0, 0.0]}
    text = str(render_model_card(card_inputs(per_class=per_class)))
    assert "| Blue Jay | 0.9000 | 1.0000 | 0.9470 | 8 |" in text
    assert "| cat | n/a | n/a | n/a | 0 (not measured: no validation images) |" in text
    # Predicted for some images although none is in validation: the zeros the macro averages count are shown.
    text = str(render_model_card(card_inputs(per_class=per_class | {"predicted": [7, 1]})))
    assert (
        "| cat | 0.0000 | 0.0000 | 0.0000 | 0 (no validation images, but predicted for 1: counted as 0 in the " in text
    )


def test_a_class_name_with_a_backtick_stays_one_code_span():
    text = str(render_model_card(card_inputs(label_names=["Blue Jay", "back`tick"], empty_classes=["`odd"])))
    assert "Labels (2): `Blue Jay`, `` back`tick ``" in text
    assert "Class folders without usable images (left out): `` `odd ``." in text


def test_a_warmup_ratio_is_shown_as_a_ratio(tmp_path):
    """transformers 5 takes --warmup_ratio as a fraction in warmup_steps: the card said `warmup_steps 0.5`."""
    from hf_resnet101.config.options import DataArguments, FinetuneTrainingArguments, ModelArguments
    from hf_resnet101.publish.card import collect_hyperparameters

    data, model = DataArguments(train_dir=str(tmp_path)), ModelArguments()
    ratio = FinetuneTrainingArguments(output_dir=str(tmp_path), warmup_ratio=0.5)
    values = collect_hyperparameters(data, model, ratio)
    assert values["warmup_ratio"] == 0.5 and "warmup_steps" not in values
    steps = collect_hyperparameters(data, model, FinetuneTrainingArguments(output_dir=str(tmp_path), warmup_steps=3))
    assert steps["warmup_steps"] == 3 and "warmup_ratio" not in steps


def test_the_card_of_a_run_not_pushed_names_no_repo_that_does_not_exist():
    """The snippet of a run never pushed said model="resnet101-birds", which pipeline looks up on the Hub."""
    text = str(render_model_card(card_inputs(repo_id=None)))
    assert 'model="resnet101-birds"' not in text
    assert 'pipeline("image-classification", model="path/to/resnet101-birds")' in text
    assert "once it is pushed, its repo id on the Hub (USER/resnet101-birds)" in text
    pushed = str(render_model_card(card_inputs(repo_id=None), repo_id="me/birds"))
    assert 'pipeline("image-classification", model="me/birds")' in pushed and "path/to/birds" not in pushed


def test_the_card_says_its_license_and_asks_for_one_where_none_was_found():
    text = " ".join(str(render_model_card(card_inputs(license="apache-2.0"))).split())
    assert "**License.** `apache-2.0` (in the metadata above)" in text
    unknown = " ".join(str(render_model_card(card_inputs(license="other"))).split())
    assert "The base model's license was not found" in unknown
    assert "hf-resnet101 card OUTPUT_DIR --license ID" in unknown
