"""The output folder as a run holds it: the lock, and the manifest that tells the run's files from the user's."""

from __future__ import annotations

import json
import os

import pytest

from hf_resnet101.errors import UsageError
from hf_resnet101.outputs import LOCK, RUN_MANIFEST
from hf_resnet101.train.output_folder import (
    RunManifest,
    foreign_files,
    is_finished,
    locked_output_folder,
    read_manifest,
    record_rewritten,
    run_outputs,
)


def test_the_lock_names_its_holder_and_a_second_holder_is_refused(tmp_path):
    with locked_output_folder(tmp_path):
        assert f"pid {os.getpid()}" in (tmp_path / LOCK).read_text()
        with (
            pytest.raises(UsageError, match=rf"is in use by another run \(pid {os.getpid()} on "),
            locked_output_folder(tmp_path),
        ):
            pass
        (tmp_path / "model.safetensors").write_bytes(b"x")
    assert (tmp_path / LOCK).read_text() == ""  # emptied, kept beside the run's files
    with locked_output_folder(tmp_path):
        pass  # released: the next run takes it


def test_a_run_that_wrote_nothing_leaves_nothing(tmp_path):
    with locked_output_folder(tmp_path):
        pass
    assert list(tmp_path.iterdir()) == []


def test_the_lock_can_be_left_to_the_main_process(tmp_path):
    with locked_output_folder(tmp_path, enabled=False):
        assert not (tmp_path / LOCK).exists()


def test_files_the_run_wrote_are_its_own_the_users_are_foreign(tmp_path):
    (tmp_path / "README.md").write_text("the user's notes")
    manifest = RunManifest(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    manifest.record(finished=True)
    (tmp_path / LOCK).write_text("")
    saved = read_manifest(tmp_path)
    assert saved["finished"] and set(saved["files"]) == {"config.json", "model.safetensors"}
    assert saved["foreign"] == ["README.md"]
    assert foreign_files(tmp_path) == ["README.md"] and is_finished(tmp_path)


def test_a_run_file_changed_afterwards_is_no_longer_the_runs(tmp_path):
    manifest = RunManifest(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    manifest.record(finished=True)
    (tmp_path / "config.json").write_text('{"edited": "by hand, longer"}')
    assert foreign_files(tmp_path) == ["config.json"]
    record_rewritten(tmp_path, ["config.json"])  # as `hf-resnet101 card` does after rewriting a run's file
    assert foreign_files(tmp_path) == []


def test_a_killed_runs_unrecorded_files_count_as_its_own(tmp_path):
    manifest = RunManifest(tmp_path)
    manifest.record(finished=False)
    (tmp_path / "checkpoint-2").mkdir()  # written after the last record, before the kill
    assert run_outputs(tmp_path, read_manifest(tmp_path)) == {"checkpoint-2"}
    assert not is_finished(tmp_path)
    assert run_outputs(tmp_path, None) == set()


def test_a_damaged_manifest_says_how_to_start_over(tmp_path):
    (tmp_path / RUN_MANIFEST).write_text("{not json")
    with pytest.raises(UsageError, match="--overwrite_output_dir"):
        read_manifest(tmp_path)
    (tmp_path / RUN_MANIFEST).write_text(json.dumps({"finished": True, "files": {}}))
    assert not is_finished(tmp_path)  # no model: not a finished run
