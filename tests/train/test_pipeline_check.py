"""The saved folder loaded back through `pipeline`: several classes checked, a broken label mapping caught."""

from __future__ import annotations

import json
import shutil

import datasets
import pytest
from conftest import CLASS_COLOURS

from hf_resnet101.errors import UsageError
from hf_resnet101.train.pipeline_check import check_with_pipeline, pipeline_check_indices


def test_indices_are_spread_over_the_split():
    assert pipeline_check_indices(100, 5) == [0, 25, 50, 74, 99]
    assert pipeline_check_indices(3, 8) == [0, 1, 2]


def validation_split(folder) -> datasets.Dataset:
    paths = sorted(str(p) for p in folder.rglob("*.png"))
    names = sorted(CLASS_COLOURS)
    labels = [names.index(p.split("/")[-2]) for p in paths]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    return datasets.Dataset.from_dict({"image": paths, "label": labels}, features=features)


def test_a_broken_label_mapping_is_caught(trained_run, tmp_path):
    names = sorted(CLASS_COLOURS)
    validation = validation_split(trained_run["validation"])
    results = check_with_pipeline(trained_run["output"], validation, [0, 1], ["x", "y"], names)
    assert {r["pipeline"] for r in results} <= set(names) and len(results) == 2
    broken = tmp_path / "broken"
    shutil.copytree(trained_run["output"], broken)
    config = json.loads((broken / "config.json").read_text())
    config["id2label"] = {i: f"LABEL_{i}" for i in config["id2label"]}
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(UsageError, match="id2label"):
        check_with_pipeline(broken, validation, [0, 1], ["x", "y"], names)
