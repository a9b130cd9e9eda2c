"""Pushing to the Hub and downloading back, with the real huggingface_hub client against a local server."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants as hub_constants
import pytest
from conftest import REPO_ROOT, point_client_at, run_cli, serving_local_hub, write_class_images
from hub_server import LocalHub
from huggingface_hub import HfApi
from transformers import pipeline

import hf_resnet101.train.run as training_module
from hf_resnet101.commands.cli import run_command
from hf_resnet101.errors import UsageError
from hf_resnet101.publish.hub import (
    TOKENS_PAGE,
    files_to_push,
    published_content,
    push_again_command,
    push_selection,
)
from hf_resnet101.train.output_folder import record_rewritten

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


@pytest.fixture
def run_copy(finished_run, tmp_path):
    """A copy of the finished run (with its file times, as the manifest records them) for a test to change."""
    return shutil.copytree(finished_run, tmp_path / "run-copy", symlinks=True)


def hub_files(hub: LocalHub, repo_id: str) -> set[str]:
    return set(hub.state.repos[repo_id].head.files)


def test_push_then_pipeline_downloads_the_same_model(
    finetune_main, image_folder, tiny_resnet, local_hub, monkeypatch, tmp_path, capfd
):
    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    push = ["--push_to_hub", "--hub_model_id", REPO_ID, "--hub_token", FAKE_TOKEN]
    # A checkpoint before the end: the Trainer records it in trainer_state.json by its absolute path.
    assert finetune_main([*args, *push, "--eval_strategy", "steps", "--eval_steps", "2", "--save_steps", "2"]) == 0

    repo = local_hub.state.repos[REPO_ID]
    pushed = set(repo.head.files)
    expected = {"model.safetensors", "config.json", "preprocessor_config.json", "README.md", "card_inputs.json"}
    assert expected | {"confusion_matrix.png", "training_curves.png", "eval_results.json"} <= pushed
    assert "training_args.bin" not in pushed and "run_manifest.json" not in pushed
    assert "run_identity.json" not in pushed  # it names local paths
    assert not any(str(tmp_path).encode() in blob for blob in local_hub.state.all_stored_bytes())
    best = json.loads(repo.head.files["trainer_state.json"].content)["best_model_checkpoint"]
    assert re.fullmatch(r"checkpoint-\d+", best), best
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


def test_a_timm_run_is_pushed_and_loads_from_the_hub(
    finetune_main, image_folder, tiny_models, local_hub, monkeypatch, tmp_path
):
    """A timm model keeps its preprocessing in config.json and has no preprocessor_config.json: the push required
    one, so no timm run could be shared."""
    out = tmp_path / "out"
    timm = str(tiny_models["timm"])
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", timm,
            "--max_steps", "2", "--eval_strategy", "no"]  # fmt: skip
    args += ["--push_to_hub", "--hub_model_id", "user/tiny-timm", "--hub_token", FAKE_TOKEN]
    assert finetune_main(args) == 0
    assert {"model.safetensors", "config.json", "README.md"} <= hub_files(local_hub, "user/tiny-timm")
    image = str(next(image_folder.rglob("*.png")))
    local = pipeline("image-classification", model=str(out))(image)
    point_client_at(monkeypatch, local_hub.url, tmp_path / "fresh-cache")
    assert pipeline("image-classification", model="user/tiny-timm")(image) == local


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

    HfApi(endpoint=local_hub.url, token=FAKE_TOKEN).delete_file("model.safetensors", REPO_ID)  # someone's mistake
    second = run_push_command(local_hub, finished_run, REPO_ID, tmp_path / "home")
    assert second.returncode == 0, second.stderr
    assert len(repo.commits) == 4
    assert "model.safetensors" in repo.head.files  # the push put it back
    assert repo.commits[-1].oid != repo.commits[-2].oid
    assert f"Pushed {finished_run} to {local_hub.url}/{REPO_ID}/commit/{repo.head.oid}" in second.stdout
    assert FAKE_TOKEN not in first.stdout + first.stderr + second.stdout + second.stderr


def test_push_publishes_only_the_runs_outputs_and_says_what_it_left_out(
    finished_run, run_copy, local_hub, tmp_path, capsys
):
    data = finished_run.parent / "train"
    run_cli(capsys, ["evaluate", str(run_copy), str(data), "--output_dir", str(run_copy / "test-eval")])
    run_cli(capsys, ["export", str(run_copy), str(run_copy / "onnx")])
    (run_copy / "notes.txt").write_text(f"Trained on {data}; ask Alice before sharing.\n")

    result = run_push_command(local_hub, run_copy, REPO_ID, tmp_path / "home")
    assert result.returncode == 0, result.stderr
    pushed = hub_files(local_hub, REPO_ID)
    assert pushed == {".gitattributes"} | {name for _, name in files_to_push(finished_run)}
    assert {"model.safetensors", "README.md", "confusion_matrix.png", "eval_results.json"} <= pushed
    assert not any(name.startswith(("test-eval/", "onnx/", "notes")) for name in pushed)
    stored = local_hub.state.repos[REPO_ID].head.files.values()
    assert not [f for f in stored if str(tmp_path).encode() in f.content]  # evaluate's and export's local paths
    left_out = [line for line in result.stderr.splitlines() if "Not pushed" in line]
    assert len(left_out) == 1, result.stderr
    assert "not written by the training run: notes.txt, onnx/, test-eval/" in left_out[0]
    assert f"hf upload {REPO_ID} {run_copy}/NAME NAME" in left_out[0]


def test_a_folder_from_before_manifests_pushes_only_the_names_a_run_writes(run_copy, local_hub, tmp_path):
    (run_copy / "run_manifest.json").unlink()
    (run_copy / "notes.txt").write_text("mine\n")
    (run_copy / "test-eval").mkdir()
    (run_copy / "test-eval" / "metrics.json").write_text("{}")

    result = run_push_command(local_hub, run_copy, REPO_ID, tmp_path / "home")
    assert result.returncode == 0, result.stderr
    pushed = hub_files(local_hub, REPO_ID)
    assert {"model.safetensors", "config.json", "README.md", "training_curves.png"} <= pushed
    assert "notes.txt" not in pushed and "test-eval/metrics.json" not in pushed
    assert "not a name a training run writes: notes.txt, test-eval/" in result.stderr


def test_push_leaves_out_a_file_changed_since_the_run_wrote_it(run_copy):
    (run_copy / "monitors.json").write_text("{}")  # edited by hand: the user's now
    pushed, left_out = push_selection(run_copy)
    assert "monitors.json" not in {name for _, name in pushed}
    assert left_out == {"monitors.json": "changed since the run wrote it"}


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("no weights", "holds no model weights (model.safetensors): give the output folder of a finished run; a run "
         "stopped early finishes when you run the same training command again"),
        ("checkpoint", "is a checkpoint of a run, not its finished output: push"),
        ("renamed checkpoint", "is a checkpoint of a run, not its finished output"),
        ("unfinished", "holds a run that has not finished"),
        ("weights replaced", "model.safetensors in"),
        ("input size edited", "preprocessor_config.json in"),
        ("missing", "does not exist: give the output folder of a finished run."),
    ],
)  # fmt: skip
def test_push_refuses_a_folder_that_is_not_a_finished_run(run_copy, local_hub, monkeypatch, capsys, damage, expected):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    folder = run_copy
    if damage == "no weights":
        (run_copy / "model.safetensors").unlink()
    elif damage == "checkpoint":
        folder = run_copy / "checkpoint-4"
    elif damage == "renamed checkpoint":
        folder = (run_copy / "checkpoint-4").rename(run_copy.parent / "best-so-far")
    elif damage == "unfinished":
        manifest = json.loads((run_copy / "run_manifest.json").read_text())
        (run_copy / "run_manifest.json").write_text(json.dumps(manifest | {"finished": False}))
    elif damage == "missing":
        folder = run_copy.parent / "no-such-run"
    elif damage == "input size edited":  # left out of the push, it left a repo that `pipeline` cannot load
        processor = json.loads((run_copy / "preprocessor_config.json").read_text())
        (run_copy / "preprocessor_config.json").write_text(json.dumps(processor | {"size": {"shortest_edge": 224}}))
    else:
        shutil.copy(run_copy / "checkpoint-4" / "model.safetensors", run_copy / "model.safetensors")
    _, err = run_cli(capsys, ["push", str(folder), "--hub_model_id", REPO_ID], expected_code=2)
    assert expected in err
    assert len(err.strip().splitlines()) == 1, err
    assert local_hub.state.requests == [] and local_hub.state.repos == {}  # nothing reached the Hub


def test_a_checkpoint_refusal_names_the_runs_folder(finished_run, local_hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    _, err = run_cli(capsys, ["push", str(finished_run / "checkpoint-4"), "--hub_model_id", REPO_ID], 2)
    assert f"push {finished_run} (the run's folder) once it has finished, or use --hub_strategy checkpoint" in err


def test_a_card_edited_by_hand_is_not_pushed_but_the_runs_card_is(run_copy, local_hub, monkeypatch, capsys, caplog):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    inputs = json.loads((run_copy / "card_inputs.json").read_text())  # as a run given --hub_model_id REPO_ID
    (run_copy / "card_inputs.json").write_text(json.dumps(inputs | {"repo_id": REPO_ID}))
    record_rewritten(run_copy, ["card_inputs.json"])
    (run_copy / "README.md").write_text("my notes on /home/me/data")  # the user's now, naming a local path
    run_cli(capsys, ["push", str(run_copy), "--hub_model_id", REPO_ID])
    card = local_hub.state.repos[REPO_ID].head.files["README.md"].content.decode()
    assert "pipeline_tag: image-classification" in card and "/home/me" not in card
    logged = " ".join(caplog.text.split())
    assert "changed since the run wrote it: README.md" in logged
    assert "The card pushed as README.md is rendered again from card_inputs.json" in logged


def test_a_bare_repo_name_is_pushed_under_the_tokens_user(finished_run, local_hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    # --repo_id, huggingface_hub's name for it, is taken as --hub_model_id
    out, err = run_cli(capsys, ["push", str(finished_run), "--repo_id", "bare-name"])
    assert set(local_hub.state.repos) == {"user/bare-name"}
    repo = local_hub.state.repos["user/bare-name"]
    assert "model.safetensors" in repo.head.files
    assert 'model="user/bare-name"' in repo.head.files["README.md"].content.decode()  # the card names the real id
    assert f"Pushed {finished_run} to {local_hub.url}/user/bare-name/commit/{repo.head.oid}" in out
    assert "Pushed" not in err  # said once


def test_training_with_a_bare_repo_name_names_the_full_id_everywhere(
    finetune_main, image_folder, tiny_resnet, local_hub, tmp_path, capsys
):
    """The local card, card_inputs.json and the closing lines name USER/NAME at the Hub the run pushed to."""
    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet),
            "--max_steps", "1", "--eval_strategy", "no", "--push_to_hub", "--hub_model_id", "bare-run",
            "--hub_token", FAKE_TOKEN]  # fmt: skip
    assert finetune_main(args) == 0
    assert set(local_hub.state.repos) == {"user/bare-run"}
    assert 'model="user/bare-run"' in (out / "README.md").read_text()
    assert json.loads((out / "card_inputs.json").read_text())["repo_id"] == "user/bare-run"
    printed = capsys.readouterr().out
    assert f"and pushed to {local_hub.url}/user/bare-run" in printed
    assert 'Use it: pipeline("image-classification", model="user/bare-run")' in printed


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("hf_RevokedTokenNotKnownToTheHub000000", "The Hub rejected the token (401 Unauthorized)"),
        ("hf_ReadOnlyTokenOfTheUser000000000000", f"Pushing to {REPO_ID} cannot work: the token"),
    ],
)
def test_a_token_that_cannot_push_gets_token_advice_not_a_plain_retry(
    finished_run, local_hub, monkeypatch, capsys, token, expected
):
    local_hub.state.add_token("hf_ReadOnlyTokenOfTheUser000000000000", "read")
    monkeypatch.setenv("HF_TOKEN", token)
    _, err = run_cli(capsys, ["push", str(finished_run), "--hub_model_id", REPO_ID], expected_code=2)
    assert expected in err
    assert "write" in err and TOKENS_PAGE in err
    assert f"Then push again with:\n  hf-resnet101 push {finished_run} --hub_model_id {REPO_ID}" in err
    assert "Push it again with" not in err and "trained" not in err
    assert local_hub.state.repos == {}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, "The Hub refused the token (401)"),
        (403, "The Hub refused the token (403)"),
        (400, "Pushing it again as it is fails the same way: fix what the error says"),
    ],
)
def test_a_push_that_fails_for_good_is_not_retried_and_says_what_to_do(
    finished_run, local_hub, monkeypatch, capsys, status, expected
):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    local_hub.state.fail_next_commits(1, status)
    _, err = run_cli(capsys, ["push", str(finished_run), "--hub_model_id", REPO_ID], expected_code=2)
    assert "failed after 1 attempt(s)" in err
    assert expected in err and "Push it again with" not in err
    assert f"hf-resnet101 push {finished_run} --hub_model_id {REPO_ID}" in err


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


def test_asking_privacy_for_an_existing_public_repo_is_told_it_stays_public(
    finished_run, local_hub, monkeypatch, caplog
):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    assert run_command(["push", str(finished_run), "--hub_model_id", REPO_ID]) == 0
    assert "already exists and is public" not in caplog.text
    assert run_command(["push", str(finished_run), "--hub_model_id", REPO_ID, "--hub_private_repo"]) == 0
    assert f"{REPO_ID} already exists and is public" in caplog.text
    assert not local_hub.state.repos[REPO_ID].private


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
            published = published_content(local, name)  # the Trainer state without local paths
            assert repo.head.files[name].content == (
                Path(published).read_bytes() if isinstance(published, str) else published
            )


@pytest.mark.parametrize("manifest", [True, False])
def test_failing_hub_leaves_the_folder_intact_and_says_how_to_push_again(
    run_copy, local_hub, monkeypatch, capsys, manifest
):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    if not manifest:  # a folder from before manifests: nothing says its run finished
        (run_copy / "run_manifest.json").unlink()
    before = folder_digest(run_copy)
    local_hub.state.fail_next_commits(100)
    assert run_command(["push", str(run_copy), "--hub_model_id", "user/down"]) == 2
    message = capsys.readouterr().err
    assert "failed after 5 attempt(s)" in message
    assert "503" in message
    assert f"Push it again with:\n  hf-resnet101 push {run_copy} --hub_model_id user/down" in message
    assert ("The output folder holds the finished run, unchanged." in message) == manifest
    assert "complete" not in message
    assert folder_digest(run_copy) == before
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


def test_push_with_the_hub_turned_off_stops_at_once(finished_run, local_hub, monkeypatch, capsys):
    """HF_HUB_OFFLINE=1: the push says so, instead of five attempts over 100 s at an error no retry fixes."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert run_command(["push", str(finished_run), "--hub_model_id", REPO_ID]) == 2
    assert "Pushing needs the Hub, and HF_HUB_OFFLINE is set: unset it, then push again." in capsys.readouterr().err


@pytest.mark.parametrize(
    ("repo_id", "token", "expected"),
    [
        (
            "offline",
            FAKE_TOKEN,
            "--push_to_hub needs the Hub, and HF_HUB_OFFLINE is set \\(nothing was trained yet\\): unset it",
        ),
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
    if repo_id == "offline":
        monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)

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


def test_card_command_renders_again(run_copy, capsys):
    assert run_command(["card", str(run_copy), "--hub_model_id", "me/renamed"]) == 0
    assert 'model="me/renamed"' in (run_copy / "README.md").read_text()
    assert "\n# renamed\n" in (run_copy / "README.md").read_text()  # titled by the repository, not the folder
    assert push_selection(run_copy)[1] == {}  # still the run's card: pushed
    assert run_command(["card", str(run_copy), "--hub_model_id", "bad id!"]) == 2  # not written into the snippet
    assert "--hub_model_id 'bad id!' is not a valid repository name" in capsys.readouterr().err
    assert 'model="me/renamed"' in (run_copy / "README.md").read_text()


def test_card_command_changes_the_license_for_the_card_and_later_pushes(run_copy, local_hub, monkeypatch, capsys):
    assert "license: other" in (run_copy / "README.md").read_text()  # a local base model with no card
    run_cli(capsys, ["card", str(run_copy), "--license", "cc-by-nc-4.0"])
    assert "license: cc-by-nc-4.0" in (run_copy / "README.md").read_text()
    assert json.loads((run_copy / "card_inputs.json").read_text())["license"] == "cc-by-nc-4.0"
    assert push_selection(run_copy)[1] == {}  # the package's own rewrite: both files still pushed
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    run_cli(capsys, ["push", str(run_copy), "--hub_model_id", "user/renamed"])  # its card is rendered again
    card = local_hub.state.repos["user/renamed"].head.files["README.md"].content.decode()
    assert "license: cc-by-nc-4.0" in card and 'model="user/renamed"' in card


def test_a_finished_run_given_again_with_push_to_hub_is_pushed_without_training(
    finetune_main, finished_run, run_copy, tiny_resnet, local_hub, caplog
):
    """The first run had no push (or was stopped during it): the same command with --push_to_hub pushes the model."""
    weights = (run_copy / "model.safetensors").read_bytes()
    args = ["--train_dir", str(finished_run.parent / "train"), "--output_dir", str(run_copy),
            "--model_name_or_path", str(tiny_resnet), "--eval_strategy", "epoch"]  # fmt: skip
    push = ["--push_to_hub", "--hub_model_id", REPO_ID, "--hub_token", FAKE_TOKEN]
    assert finetune_main([*args, *push]) == 0
    assert f"Nothing was trained or changed; it is pushed to {REPO_ID} as asked" in caplog.text
    assert {"model.safetensors", "README.md", "config.json"} <= hub_files(local_hub, REPO_ID)
    assert local_hub.state.repos[REPO_ID].head.files["model.safetensors"].content == weights
    assert (run_copy / "model.safetensors").read_bytes() == weights
