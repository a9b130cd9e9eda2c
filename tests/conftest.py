"""Fixtures: tiny models of each family and tiny image folders, all built offline."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants as hub_constants
import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
CLASS_COLOURS = {"Blue Jay": (40, 70, 200), "cat": (200, 60, 40), "élan vital": (50, 190, 60)}


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch):
    """No test may reach the network: the Hub counts as unreachable."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(autouse=True)
def scan_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own scan cache, so no verdict leaks between tests or into the user's cache."""
    monkeypatch.setenv("HF_RESNET101_CACHE", str(tmp_path_factory.mktemp("hf-resnet101-cache")))


def write_class_images(root: Path, per_class: int, seed: int = 0, classes=CLASS_COLOURS) -> Path:
    """Writes noisy images whose colour tells the class, in sizes that vary like real photos."""
    rng = np.random.default_rng(seed)
    for name, colour in classes.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            height, width = rng.integers(24, 48, size=2)
            noise = rng.normal(0, 25, size=(height, width, 3))
            pixels = np.clip(np.asarray(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"img_{i:03d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """Three classes (one with a space, one non-ASCII), 8 images each."""
    return write_class_images(tmp_path / "data" / "train", per_class=8)


@pytest.fixture
def train_and_validation_folders(tmp_path) -> tuple[Path, Path]:
    train = write_class_images(tmp_path / "data" / "train", per_class=8, seed=1)
    validation = write_class_images(tmp_path / "data" / "validation", per_class=3, seed=2)
    return train, validation


def save_tiny_resnet(path: Path) -> Path:
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    config = ResNetConfig(
        depths=[1, 1], hidden_sizes=[16, 32], embedding_size=8, layer_type="bottleneck", num_labels=4
    )
    ResNetForImageClassification(config).save_pretrained(path)
    ConvNextImageProcessor(
        size={"shortest_edge": 32},
        crop_pct=0.875,
        resample=3,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(path)
    return path


def save_tiny_vit(path: Path) -> Path:
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        image_size=32,
        patch_size=8,
        num_labels=4,
    )
    ViTForImageClassification(config).save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def save_tiny_timm(path: Path) -> Path:
    import timm
    from transformers import AutoModelForImageClassification, TimmWrapperConfig

    pretrained_cfg = dict(timm.create_model("test_resnet", pretrained=False).pretrained_cfg)
    pretrained_cfg["input_size"] = [3, 32, 32]
    config = TimmWrapperConfig(architecture="test_resnet", pretrained_cfg=pretrained_cfg, num_labels=4)
    # The timm wrapper keeps its preprocessing settings in config.json; there is no preprocessor_config.json.
    AutoModelForImageClassification.from_config(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_resnet(tmp_path_factory) -> Path:
    return save_tiny_resnet(tmp_path_factory.mktemp("tiny-resnet"))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    return {
        "resnet": save_tiny_resnet(tmp_path_factory.mktemp("tiny-resnet-family")),
        "timm": save_tiny_timm(tmp_path_factory.mktemp("tiny-timm")),
        "vit": save_tiny_vit(tmp_path_factory.mktemp("tiny-vit")),
    }


@pytest.fixture(scope="session")
def finetune_main():
    """`main` of recipes/finetune.py, imported as the script is run."""
    sys.path.insert(0, str(REPO_ROOT / "recipes"))
    try:
        import finetune
    finally:
        sys.path.pop(0)

    def main(argv: list[str]):
        # fp32 unless a test asks otherwise: tests compare the run's evaluation with the fp32 pipeline exactly,
        # and tiny models run fastest in fp32.
        if not any(arg in ("--precision", "--fp16", "--bf16") for arg in argv):
            argv = [*argv, "--precision", "fp32"]
        return finetune.main(argv)

    return main


@pytest.fixture(scope="session")
def trained_run(finetune_main, tmp_path_factory) -> dict[str, Path]:
    """A tiny ResNet fine-tuned on a train folder with a separate validation folder (shared by the
    predict/evaluate/export tests): its output folder and both data folders."""
    root = tmp_path_factory.mktemp("trained-run")
    train = write_class_images(root / "train", per_class=8, seed=1)
    validation = write_class_images(root / "validation", per_class=3, seed=2)
    model = save_tiny_resnet(root / "tiny-resnet")
    output = root / "out"
    args = ["--train_dir", str(train), "--validation_dir", str(validation), "--output_dir", str(output)]
    # fp32, so that `evaluate --precision fp32` can reproduce its metrics exactly on any CPU
    code = finetune_main([*args, "--model_name_or_path", str(model), "--eval_strategy", "no", "--seed", "3",
                          "--precision", "fp32"])  # fmt: skip
    assert code == 0
    return {"output": output, "train": train, "validation": validation}


def run_cli(capsys, argv: list[str], expected_code: int = 0) -> tuple[str, str]:
    """Runs `hf-resnet101 ARGV` in-process; checks the exit status and that no traceback was printed."""
    from hf_resnet101.commands.cli import run_command

    code = run_command(argv)
    out, err = capsys.readouterr()
    assert code == expected_code, err
    assert "Traceback" not in err
    return out, err


def point_client_at(monkeypatch, url: str, cache_dir) -> None:
    """What setting HF_ENDPOINT, HF_HUB_DISABLE_XET and HF_HOME before import does (the client reads them then)."""
    monkeypatch.setattr(hub_constants, "ENDPOINT", url)
    monkeypatch.setattr(hub_constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")


@contextlib.contextmanager
def serving_local_hub(monkeypatch, tmp_path, token: str):
    """The local Hub server (tests/hub_server.py) with the real client pointed at it and short retry waits."""
    from hub_server import LocalHub

    import hf_resnet101.publish.hub as hub_module

    with LocalHub(token) as hub:
        point_client_at(monkeypatch, hub.url, tmp_path / "hub-cache")
        # A real login on this machine must not count: the token comes from the test or nowhere.
        monkeypatch.setattr(hub_constants, "HF_TOKEN_PATH", str(tmp_path / "no-token-file"))
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
        monkeypatch.setattr(hub_module, "RETRY_WAITS_S", (0.01, 0.01, 0.01, 0.01))
        yield hub


def run_offline(command: list[str], timeout: float = 600, **env) -> subprocess.CompletedProcess:
    """A command in a subprocess as a user on a machine without network or GPU would run it."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", **env}
    return subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=timeout)


def logged_losses(out: Path) -> dict[int, float]:
    """The training loss the run logged at each step (trainer_state.json)."""
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return {entry["step"]: entry["loss"] for entry in history if "loss" in entry}
