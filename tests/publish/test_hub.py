"""Pushing to the Hub and downloading back, with the real huggingface_hub client against a local server."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys

import huggingface_hub.constants as hub_constants
import pytest
from conftest import REPO_ROOT, point_client_at, serving_local_hub, write_class_images
from hub_server import LocalHub
from transformers import pipeline

import hf_resnet101.train.run as training_module
from hf_resnet101.commands.cli import run_command
from hf_resnet101.errors import UsageError
from hf_resnet101.publish.hub import files_to_push, push_again_command

# Recognisable, so a leak into any file, log or upload shows up in a byte search.
FAKE_TOKEN = "hf_FAKEtokenNeverToBeWrittenAnywhere0123"
REPO_ID = "user/tiny-resnet"


def folder_digest(folder) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def files_containing(folder, needle: bytes) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.fixture
def local_hub(monkeypatch, tmp_path):
    with serving_local_hub(monkeypatch, tmp_path, FAKE_TOKEN) as hub:
        yield hub


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_resnet, finetune_main):
    """A finished output folder (trained without pushing), shared by the push tests that do not train."""
    base = tmp_path_factory.mktemp("finished")
    data = write_class_images(base / "train", per_class=6)
    out = base / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
        args = ["--train_dir", str(data), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
        assert finetune_main([*args, "--eval_strategy", "epoch"]) == 0
    return out


def test_push_then_pipeline_downloads_the_same_model(
    finetune_main, image_folder, tiny_resnet, local_hub, monkeypatch, tmp_path, capfd
):
    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    push = ["--push_to_hub", "--hub_model_id", REPO_ID, "--hub_token", FAKE_TOKEN]
    assert finetune_main([*args, *push, "--eval_strategy", "epoch"]) == 0

    repo = local_hub.state.repos[REPO_ID]
    pushed = set(repo.head.files)
    expected = {"model.safetensors", "config.json", "preprocessor_config.json", "README.md", "card_inputs.json"}
    assert expected | {"confusion_matrix.png", "training_curves.png", "eval_results.json"} <= pushed
    assert "training_args.bin" not in pushed and "run_manifest.json" not in pushed
    assert "run_identity.json" not in pushed  # it names local paths
    assert (
        'pipeline("image-classification", model="user/tiny-resnet")' in repo.head.files["README.md"].content.decode()
    )

    # Nowhere: not on the server, not in the output folder (training_args.bin included), not in the logs.
    token = FAKE_TOKEN.encode()
    assert not any(token in blob for blob in local_hub.state.all_stored_bytes())
    assert files_containing(out, token) == []
    assert FAKE_TOKEN not in "".join(capfd.readouterr())

    validation = [
        str(image_folder.parent / row.split(",")[2])
        for row in (out / "splits.csv").read_text().splitlines()[1:]
        if "validation" in row
    ]
    local = pipeline("image-classification", model=str(out))(validation)
    point_client_at(monkeypatch, local_hub.url, tmp_path / "fresh-cache")
    downloaded = pipeline("image-classification", model=REPO_ID)(validation)
    assert [[r["label"] for r in result] for result in downloaded] == [
        [r["label"] for r in result] for result in local
    ]
    for remote_result, local_result in zip(downloaded, local, strict=True):
        assert [r["score"] for r in remote_result] == pytest.approx([r["score"] for r in local_result], abs=1e-5)
    assert (tmp_path / "fresh-cache" / "models--user--tiny-resnet").is_dir()


def run_push_command(hub: LocalHub, output_dir, repo_id: str, home) -> subprocess.CompletedProcess:
    """`hf-resnet101 push` in a fresh process configured only through the environment, as a user runs it."""
    env = os.environ | {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(home),
        "HF_TOKEN": FAKE_TOKEN,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-c", "from hf_resnet101.commands.cli import main; main()", "push", str(output_dir)]
    return subprocess.run([*command, "--hub_model_id", repo_id], env=env, capture_output=True, text=True, timeout=120)


def test_second_push_makes_a_new_commit(finished_run, local_hub, tmp_path):
    first = run_push_command(local_hub, finished_run, REPO_ID, tmp_path / "home")
    assert first.returncode == 0, first.stderr
    repo = local_hub.state.repos[REPO_ID]
    assert len(repo.commits) == 2  # the repo's initial commit, then the push
    # Pushed under a repo id the run did not know: the card on the Hub names the right one.
    assert f'model="{REPO_ID}"' in repo.head.files["README.md"].content.decode()

    (finished_run / "NOTES.md").write_text("Re-trained data looked fine.\n")
    try:
        second = run_push_command(local_hub, finished_run, REPO_ID, tmp_path / "home")
    finally:
        (finished_run / "NOTES.md").unlink()
    assert second.returncode == 0, second.stderr
    assert len(repo.commits) == 3
    assert "NOTES.md" in repo.head.files and "model.safetensors" in repo.head.files
    assert repo.commits[-1].oid != repo.commits[-2].oid
    assert f"Pushed {finished_run} to {local_hub.url}/{REPO_ID}/commit/{repo.head.oid}" in second.stdout
    assert FAKE_TOKEN not in first.stdout + first.stderr + second.stdout + second.stderr


def test_an_export_is_not_pushed_as_the_model_and_the_suggested_upload_puts_it_beside_it(
    finished_run, local_hub, monkeypatch, tmp_path, capsys
):
    from hf_resnet101.commands.export import export_model

    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    export_dir = tmp_path / "exported"
    export_model(str(finished_run), export_dir)
    assert run_command(["push", str(export_dir), "--hub_model_id", REPO_ID]) == 2
    message = capsys.readouterr().err
    assert "is an ONNX export: no PyTorch weights for `pipeline`, and no model card" in message
    assert local_hub.state.requests == []  # refused before anything reached the Hub
    suggested = re.search(r"hf upload \S+ \S+ onnx", message).group().split()

    assert run_push_command(local_hub, finished_run, REPO_ID, tmp_path / "home").returncode == 0
    env = os.environ | {"HF_ENDPOINT": local_hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "home")}
    hf = os.path.join(os.path.dirname(sys.executable), "hf")
    upload = subprocess.run([hf, *suggested[1:]], env=env, capture_output=True, text=True, timeout=120)
    assert upload.returncode == 0, upload.stderr
    files = local_hub.state.repos[REPO_ID].head.files
    assert {"onnx/model.onnx", "onnx/preprocessor_config.json", "onnx/labels.json"} <= set(files)
    assert "model.safetensors" in files and "README.md" in files  # the model and its card stay as pushed


def test_push_survives_two_server_errors(finished_run, local_hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    local_hub.state.fail_next_commits(2)
    assert run_command(["push", str(finished_run), "--hub_model_id", "user/flaky", "--hub_private_repo"]) == 0
    commit_calls = [path for method, path in local_hub.state.requests if path.endswith("/commit/main")]
    assert len(commit_calls) == 3
    repo = local_hub.state.repos["user/flaky"]
    assert repo.private
    assert set(repo.head.files) == {".gitattributes"} | {name for _, name in files_to_push(finished_run)}
    for local, name in files_to_push(finished_run):
        if name != "README.md":  # rendered for user/flaky
            assert repo.head.files[name].content == local.read_bytes()


def test_failing_hub_leaves_the_folder_intact_and_says_how_to_push_again(finished_run, local_hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    before = folder_digest(finished_run)
    local_hub.state.fail_next_commits(100)
    assert run_command(["push", str(finished_run), "--hub_model_id", "user/down"]) == 2
    message = capsys.readouterr().err
    assert "failed after 5 attempt(s)" in message
    assert "503" in message
    assert f"hf-resnet101 push {finished_run} --hub_model_id user/down" in message
    assert folder_digest(finished_run) == before
    assert FAKE_TOKEN not in message


def test_unreachable_hub_is_retried_then_explained(finished_run, local_hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    local_hub.stop()  # nothing listens on its port any more
    assert run_command(["push", str(finished_run), "--hub_model_id", "user/offline"]) == 2
    message = capsys.readouterr().err
    assert "failed after 5 attempt(s): ConnectError" in message
    assert f"hf-resnet101 push {finished_run} --hub_model_id user/offline" in message


def test_push_without_a_token_says_how_to_log_in(finished_run, local_hub, capsys):
    assert run_command(["push", str(finished_run), "--hub_model_id", "user/no-token"]) == 2
    message = capsys.readouterr().err
    assert "Pushing needs a Hugging Face token with write access, and none was found" in message
    assert "hf auth login" in message and "trained" not in message  # the push command trains nothing


@pytest.mark.parametrize(
    ("repo_id", "token", "expected"),
    [
        (REPO_ID, None, "no.*token|token.*none was found"),
        ("user/bad--name", FAKE_TOKEN, "not a valid repository name"),
        ("a/b/c", FAKE_TOKEN, "not a valid repository name"),
    ],
)
def test_push_problems_stop_the_run_before_any_data_is_loaded(
    finetune_main, image_folder, local_hub, monkeypatch, tmp_path, capsys, repo_id, token, expected
):
    if token:
        monkeypatch.setenv("HF_TOKEN", token)

    def must_not_load(*args, **kwargs):
        raise AssertionError("the dataset was loaded before the push settings were checked")

    monkeypatch.setattr(training_module, "load_data", must_not_load)
    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--push_to_hub", "--hub_model_id", repo_id]
    assert finetune_main(args) == 2
    assert not out.exists() or not any(out.iterdir())
    assert re.search(expected, capsys.readouterr().err)


def test_files_to_push_follow_the_hub_strategy(tmp_path):
    for name in ("config.json", "model.safetensors", "README.md", "training_args.bin", "runs/events.out"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    for step in (2, 10):
        for name in ("model.safetensors", "optimizer.pt", "trainer_state.json", "training_args.bin"):
            (tmp_path / f"checkpoint-{step}").mkdir(exist_ok=True)
            (tmp_path / f"checkpoint-{step}" / name).write_text("x")

    def pushed(strategy):
        return sorted(name for _, name in files_to_push(tmp_path, strategy))

    final = ["README.md", "config.json", "model.safetensors"]
    assert pushed("end") == pushed("every_save") == final
    assert pushed("checkpoint") == sorted(
        final + [f"last-checkpoint/{n}" for n in ("model.safetensors", "optimizer.pt", "trainer_state.json")]
    )
    assert len(pushed("all_checkpoints")) == len(final) + 6
    with pytest.raises(UsageError, match="--hub_strategy must be one of"):
        files_to_push(tmp_path, "sometimes")


def test_push_again_command_repeats_the_options():
    assert push_again_command("out dir", "me/x", True, "checkpoint") == (
        "hf-resnet101 push 'out dir' --hub_model_id me/x --hub_private_repo --hub_strategy checkpoint"
    )


def test_card_command_renders_again(finished_run, tmp_path):
    readme = finished_run / "README.md"
    before = readme.read_text()
    assert run_command(["card", str(finished_run), "--hub_model_id", "me/renamed"]) == 0
    try:
        assert 'model="me/renamed"' in readme.read_text()
    finally:
        readme.write_text(before)
