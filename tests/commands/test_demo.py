"""The README's demo: the full ResNet-101 on the digits, offline (slow: about two minutes on 2 cores)."""

from __future__ import annotations

import time

import pytest

from hf_resnet101.commands.cli import main


@pytest.mark.slow
def test_demo_learns_offline_within_five_minutes(tmp_path, capsys):
    started = time.perf_counter()
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--output_dir", str(tmp_path / "demo")])
    elapsed = time.perf_counter() - started
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    accuracy = float(out.split("accuracy=")[1].split(",")[0])
    assert accuracy >= 0.8, out
    assert elapsed < 300, f"demo took {elapsed:.0f} s"
    assert "pipeline('image-classification')" in out


def test_demo_help_shows_its_defaults(capsys):
    from hf_resnet101.commands.cli import run_command

    with pytest.raises(SystemExit):
        run_command(["demo", "--help"])
    assert "(default: demo_output)" in " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_digits_are_written_as_one_folder_per_digit_and_reused(tmp_path):
    from PIL import Image

    from hf_resnet101.commands.demo import write_digits_image_folder

    root = write_digits_image_folder(tmp_path / "digits")
    assert sorted(p.name for p in root.iterdir()) == [str(d) for d in range(10)]
    files = sorted(root.rglob("*.png"))
    assert len(files) == 1_797
    with Image.open(files[0]) as image:
        assert image.mode == "L" and image.size == (8, 8) and image.getextrema()[1] > 200  # 0-16 scaled to 0-255
    stamp = files[0].stat().st_mtime_ns
    write_digits_image_folder(tmp_path / "digits")
    assert files[0].stat().st_mtime_ns == stamp  # a second demo reuses the images


def test_demo_settings_from_scratch_use_a_larger_learning_rate():
    from hf_resnet101.commands.demo import demo_settings

    assert demo_settings(pretrained=True, epochs=None) == {
        "learning_rate": 5e-5, "num_train_epochs": 2, "per_device_train_batch_size": 32
    }  # fmt: skip
    assert demo_settings(pretrained=False, epochs=0.5)["learning_rate"] == 1e-3
    assert demo_settings(pretrained=False, epochs=0.5)["num_train_epochs"] == 0.5


def test_the_demo_log_times_its_start_up_and_the_digits(tmp_path, monkeypatch):
    from hf_resnet101.commands import demo

    calls = []
    monkeypatch.setattr(demo, "run_finetune", lambda *args, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(demo, "hub_is_reachable", lambda: False)
    demo.run_demo(tmp_path / "demo", time_before={"start-up (Python, imports, options)": 4.0})
    phases = calls[0]["time_before"]
    assert list(phases) == ["start-up (Python, imports, options)", demo.DIGITS_PHASE]
    assert phases[demo.DIGITS_PHASE] > 0


def test_the_demo_trains_in_the_precision_asked_for(tmp_path, monkeypatch):
    """`hf-resnet101 demo --precision fp32` reaches the run's arguments (auto is bf16 on some CPUs)."""
    from hf_resnet101.commands import demo

    calls = []
    monkeypatch.setattr(demo, "run_finetune", lambda *args, **kwargs: calls.append(args))
    monkeypatch.setattr(demo, "hub_is_reachable", lambda: False)
    monkeypatch.setattr(demo, "print_demo_report", lambda result: None)
    from hf_resnet101.commands.cli import run_command

    run_command(["demo", "--output_dir", str(tmp_path / "demo"), "--precision", "fp32", "--epochs", "0.1"])
    training_args = calls[0][2]
    assert training_args.precision == "fp32" and not training_args.bf16 and not training_args.fp16
    assert training_args.num_train_epochs == 0.1
