"""Presets, the product page's ranges and advice, class weighting and frozen backbones."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import write_class_images
from safetensors.torch import load_file

from hf_resnet101.commands.cli import main as cli_main
from hf_resnet101.config.options import DataArguments, FinetuneTrainingArguments, ModelArguments
from hf_resnet101.config.parser import ConfigParser
from hf_resnet101.config.presets import evaluation_cost_warning, range_warnings, resolve_settings, tier_for
from hf_resnet101.config.resolve import check_settings, resolve_run_options
from hf_resnet101.data.transforms import DataConfig, build_train_transform
from hf_resnet101.train.losses import balanced_class_weights, make_weighted_loss


@pytest.mark.parametrize(
    ("images", "tier"),
    [(500, "tiny"), (1_999, "tiny"), (2_000, "small"), (4_999, "small"), (5_000, "medium"), (20_000, "large"),
     (100_000, "very_large")],
)  # fmt: skip
def test_tiers_follow_the_page(images, tier):
    assert tier_for(images).name == tier


def test_page_recommendations_per_tier():
    assert tier_for(3_000).recommended() == {
        "learning_rate": 2e-5, "num_train_epochs": 12, "per_device_train_batch_size": 8, "augmentation": "heavy"
    }  # fmt: skip
    assert tier_for(10_000).recommended()["learning_rate"] == 5e-5
    assert tier_for(50_000).recommended()["learning_rate"] == 1e-4
    assert tier_for(1_000).recommended()["freeze_backbone"] == "all_but_last"


def parse(args: list[str], tmp_path):
    parser = ConfigParser((DataArguments, ModelArguments, FinetuneTrainingArguments))
    data, model, training = parser.parse_args_and_config(
        ["--train_dir", str(tmp_path), "--output_dir", str(tmp_path / "o"), *args]
    )
    return data, model, training, parser.explicit_options


def resolve(data, model, training, explicit, num_train_images=1_000, imbalance_ratio=1.0):
    return resolve_run_options(data, model, training, explicit, num_train_images, 200, imbalance_ratio)


def test_explicit_values_win_over_a_preset_and_sources_are_kept(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("num_train_epochs: 3\n")
    data, model, training, explicit = parse(
        ["--config", str(config), "--preset", "medium", "--learning_rate", "3e-5"], tmp_path
    )
    options = resolve(data, model, training, explicit, num_train_images=50)
    settings, resolved = options.settings, options.training
    assert resolved.learning_rate == 3e-5 and settings["learning_rate"].source == "command line"
    assert resolved.num_train_epochs == 3 and settings["num_train_epochs"].source == "config file"
    assert resolved.per_device_train_batch_size == 16 and settings["per_device_train_batch_size"].source == (
        "preset medium"
    )
    assert options.data.augmentation == "standard"
    # what the user gave is left as given: the run reads the resolved options only
    assert (training.per_device_train_batch_size, data.augmentation) == (4, "light")


def test_auto_preset_uses_the_dataset_size(tmp_path):
    data, model, training, explicit = parse(["--preset", "auto"], tmp_path)
    options = resolve(data, model, training, explicit, num_train_images=30_000)
    resolved = options.training
    assert (resolved.learning_rate, resolved.per_device_train_batch_size, options.data.augmentation) == (
        1e-4,
        32,
        "light",
    )


def test_no_preset_keeps_the_page_defaults(tmp_path):
    data, model, training, explicit = parse([], tmp_path)
    options = resolve(data, model, training, explicit, num_train_images=30_000)
    resolved = options.training
    assert (resolved.learning_rate, resolved.per_device_train_batch_size, resolved.num_train_epochs) == (5e-5, 4, 1)
    assert {s.source for s in options.settings.values()} == {"default"}


def test_resolve_settings_is_pure():
    settings = resolve_settings({"learning_rate": 5e-5}, {}, tier_for(25_000))
    assert settings["learning_rate"].value == 1e-4


def test_range_warnings_give_the_page_reason():
    warnings = range_warnings({"per_device_train_batch_size": 64, "num_train_epochs": 3, "learning_rate": 1e-3})
    assert len(warnings) == 2
    assert "2-32" in warnings[0] and "1e-05-0.0001" in warnings[1]


def test_evaluation_cost_is_estimated():
    assert evaluation_cost_warning(10_000, 1_500, 4, 1, eval_every=1) is not None
    message = evaluation_cost_warning(10_000, 1_500, 4, 1, eval_every=1)
    assert "2,500 evaluations" in message and "--eval_steps" in message
    assert evaluation_cost_warning(10_000, 1_500, 4, 1, eval_every=500) is None
    assert evaluation_cost_warning(10_000, 1_500, 4, 1, eval_every=None) is None


def test_check_settings_stops_on_a_batch_larger_than_the_data(tmp_path):
    _, _, training, _ = parse(["--per_device_train_batch_size", "16"], tmp_path)
    from hf_resnet101.errors import UsageError

    with pytest.raises(UsageError, match="larger than the 10 training images"):
        check_settings(training, num_train=10, num_validation=2, warn=print)
    warnings = []
    _, _, training, _ = parse(["--learning_rate", "1e-3"], tmp_path)
    check_settings(training, num_train=1_000, num_validation=200, warn=warnings.append)
    assert any("--learning_rate" in w for w in warnings) and any("evaluations" in w for w in warnings)


def test_imbalance_switches_the_best_model_metric_unless_chosen(tmp_path):
    options = resolve(*parse([], tmp_path), imbalance_ratio=5.0)
    assert (options.training.metric_for_best_model, options.training.greater_is_better) == ("f1_macro", True)
    options = resolve(*parse(["--metric_for_best_model", "accuracy"], tmp_path), imbalance_ratio=5.0)
    assert options.training.metric_for_best_model == "accuracy"
    assert resolve(*parse([], tmp_path), imbalance_ratio=1.5).training.metric_for_best_model == "accuracy"


def test_resolved_options_are_read_only_and_keep_the_token_out_of_the_trainers_arguments(tmp_path):
    import dataclasses

    data, model, training, explicit = parse(
        ["--push_to_hub", "--hub_model_id", "me/birds", "--hub_token", "hf_secret", "--gradient_checkpointing"],
        tmp_path,
    )
    options = resolve(data, model, training, explicit)
    for frozen in (options, options.data, options.model):
        with pytest.raises(dataclasses.FrozenInstanceError):
            frozen.augmentation = "heavy"
    assert options.push.repo_id == "me/birds" and options.gradient_checkpointing
    # the Trainer pickles its arguments into training_args.bin: no token there, no push of its own, no
    # gradient-checkpointing call on a model that lacks the method
    assert (options.training.hub_token, options.training.push_to_hub, options.training.gradient_checkpointing) == (
        None,
        False,
        False,
    )
    assert (training.push_to_hub, training.gradient_checkpointing) == (True, True)  # the parsed ones untouched


def test_balanced_class_weights_and_loss():
    weights = balanced_class_weights([90, 10, 0])
    assert weights.tolist() == pytest.approx([100 / 180, 100 / 20, 0.0])
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    labels = torch.tensor([1, 1])
    loss = make_weighted_loss(weights)({"logits": logits}, labels)
    expected = torch.nn.functional.cross_entropy(logits, labels)  # same class: weighting cancels out
    assert loss.item() == pytest.approx(expected.item())


def test_weighted_training_on_imbalanced_data(finetune_main, tiny_resnet, tmp_path):
    data = write_class_images(tmp_path / "d", per_class=4)
    write_class_images(tmp_path / "d", per_class=16, classes={"cat": (200, 60, 40)}, seed=3)
    out = tmp_path / "out"
    args = ["--train_dir", str(data), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    assert finetune_main([*args, "--class_weighting", "balanced", "--eval_strategy", "epoch"]) == 0
    report = json.loads((out / "data_report.json").read_text())
    assert report["imbalance_ratio"] >= 3


@pytest.mark.parametrize("strength", ["none", "light", "standard", "heavy"])
def test_augmentation_strengths_produce_normalised_batches(strength):
    from messy_data import coloured
    from torchvision.transforms.v2.functional import pil_to_tensor

    from hf_resnet101.data.transforms import collate

    config = DataConfig(48, 40, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    crop = build_train_transform(config, strength)(pil_to_tensor(coloured((200, 40, 40), size=(100, 70))))
    assert crop.shape == (3, 48, 40) and crop.dtype == torch.uint8
    batch = collate([{"pixel_values": crop, "label": 1}] * 2, mean=config.mean, std=config.std)["pixel_values"]
    assert batch.shape == (2, 3, 48, 40) and batch.dtype == torch.float32
    assert torch.allclose(batch[0], (crop / 255 - 0.5) / 0.25, atol=1e-6)
    assert batch.min() < 0 < batch.max()


def test_jpegs_decode_upright_and_alike_by_either_decoder(tmp_path):
    """torchvision's decoder (full-size JPEGs) and Pillow's (the rest) give the same upright RGB pixels."""
    from messy_data import coloured, exif_rotated_jpeg
    from PIL import Image
    from torchvision.transforms.v2.functional import pil_to_tensor

    from hf_resnet101.data.images import decode_rgb, to_rgb

    exif_rotated_jpeg(tmp_path / "rotated.jpg")
    coloured((90, 120, 200), size=(64, 48)).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    coloured((90, 120, 200), size=(64, 48)).convert("L").save(tmp_path / "grey.jpg", quality=95)
    for name in ("rotated.jpg", "cmyk.jpg", "grey.jpg"):
        path = tmp_path / name
        by_pillow = pil_to_tensor(to_rgb(Image.open(path))).int()
        from_path = decode_rgb({"path": str(path), "bytes": None}, min_short_side=448)
        from_bytes = decode_rgb({"path": None, "bytes": path.read_bytes()}, min_short_side=448)
        assert torch.equal(from_path, from_bytes)
        assert from_path.dtype == torch.uint8 and from_path.shape == by_pillow.shape, name
        assert (from_path.int() - by_pillow).abs().float().mean() < 3, name  # IDCT rounding differs by a level or two


def test_freeze_backbone_trains_only_the_last_stage(finetune_main, image_folder, tiny_resnet, tmp_path):
    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    assert finetune_main([*args, "--freeze_backbone", "all_but_last", "--learning_rate", "1e-2"]) == 0
    before, after = load_file(tiny_resnet / "model.safetensors"), load_file(out / "model.safetensors")
    stem = "resnet.embedder.embedder.convolution.weight"
    first_stage = "resnet.encoder.stages.0.layers.0.layer.0.convolution.weight"
    last_stage = "resnet.encoder.stages.1.layers.0.layer.0.convolution.weight"
    assert torch.equal(before[stem], after[stem]) and torch.equal(before[first_stage], after[first_stage])
    assert not torch.equal(before[last_stage], after[last_stage])
    assert "resnet.embedder.embedder.normalization.num_batches_tracked" in after  # saved as plain BatchNorm


def test_preset_auto_end_to_end(finetune_main, image_folder, tiny_resnet, tmp_path):
    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    assert finetune_main([*args, "--preset", "auto", "--max_steps", "2", "--eval_strategy", "no"]) == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["train_batch_size"] == 8  # the tiny tier's batch size


def test_inspect_command(image_folder, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["inspect", str(image_folder.parent)])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "train: 21 images in 3 classes" in out
    assert "dataset size tier: tiny" in out and "resnet-50" in out
    assert "No GPU" in out or "GPU with" in out


def test_large_jpegs_decode_at_reduced_size_small_ones_in_full(tmp_path):
    from messy_data import coloured

    from hf_resnet101.data.images import open_image

    coloured((90, 120, 200), size=(3000, 2000)).save(tmp_path / "big.jpg", quality=90)
    coloured((90, 120, 200), size=(500, 375)).save(tmp_path / "small.jpg", quality=90)
    big, _ = open_image({"path": str(tmp_path / "big.jpg"), "bytes": None}, min_short_side=448)
    big.load()
    assert big.size == (750, 500)  # 1/4: the smallest scale that keeps the short side at least 448
    small, _ = open_image({"path": str(tmp_path / "small.jpg"), "bytes": None}, min_short_side=448)
    small.load()
    assert small.size == (500, 375)


def test_seeded_transform_repeats_per_image_and_epoch(image_folder):
    from hf_resnet101.data.transforms import INDEX_COLUMN, SeededTrainTransform

    transform = SeededTrainTransform(build_train_transform(DataConfig(16, 16, (0.5,) * 3, (0.5,) * 3), "heavy"), 3)
    image = next(image_folder.rglob("*.png"))
    batch = {"image": [{"path": str(image), "bytes": None}] * 2, INDEX_COLUMN: [5, 6], "label": [0, 0]}
    first = transform(batch)["pixel_values"]
    assert torch.equal(transform(batch)["pixel_values"][0], first[0])
    assert not torch.equal(first[0], first[1])  # another image index, other random crops
    transform.epoch = 1
    assert not torch.equal(transform(batch)["pixel_values"][0], first[0])


def test_resnet_gradient_checkpointing_gives_the_same_gradients(tiny_resnet):
    from transformers import AutoModelForImageClassification

    from hf_resnet101.modeling import apply_gradient_checkpointing

    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    grads = []
    for checkpointed in (False, True):
        model = AutoModelForImageClassification.from_pretrained(tiny_resnet).train()
        if checkpointed:
            assert apply_gradient_checkpointing(model) == "gradient checkpointing of 2 residual blocks"
        model(pixel_values=x).logits.sum().backward()
        grads.append(model.resnet.embedder.embedder.convolution.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


@pytest.mark.parametrize("family", ["resnet", "timm"])
def test_gradient_checkpointing_run(finetune_main, image_folder, tiny_models, tmp_path, caplog, family):
    out = tmp_path / "out"
    model = str(tiny_models[family])
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", model]
    # Two full batches: the tiny timm model cannot train on a last batch of one image (BatchNorm on 1x1 maps).
    assert finetune_main([*args, "--gradient_checkpointing", "--eval_strategy", "no", "--max_steps", "2"]) == 0
    assert (out / "model.safetensors").is_file()
    expected = {"resnet": "gradient checkpointing of 2 residual blocks", "timm": "built-in gradient checkpointing"}
    assert f"--gradient_checkpointing: {expected[family]}" in caplog.text


def test_no_augmentation_keeps_the_aspect_ratio():
    """A 100x50 image with a red left quarter: a centre crop of the resized image shows no red; a squash would."""
    image = torch.zeros(3, 50, 100, dtype=torch.uint8)
    image[2] = 200  # blue
    image[:, :, :25] = torch.tensor([200, 0, 0], dtype=torch.uint8).view(3, 1, 1)
    crop = build_train_transform(DataConfig(16, 16, (0.5,) * 3, (0.5,) * 3), "none")(image)
    assert crop.shape == (3, 16, 16)
    assert crop[0].max() < 50  # no red left
