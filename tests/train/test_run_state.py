"""What the run's phases hand on: the data's counts and labels read from the splits."""

from __future__ import annotations

import datasets

from hf_resnet101.data.report import DataReport
from hf_resnet101.train.run_state import RunData


def test_run_data_reads_labels_and_counts_from_the_splits():
    features = datasets.Features({"label": datasets.ClassLabel(names=["cat", "dog"])})
    dataset = datasets.DatasetDict(
        train=datasets.Dataset.from_dict({"label": [0, 1, 1]}, features=features),
        validation=datasets.Dataset.from_dict({"label": [0]}, features=features),
    )
    data = RunData(dataset, DataReport.__new__(DataReport), {"data_digest": "x"})
    assert (data.label_names, data.num_train, data.num_validation) == (["cat", "dog"], 3, 1)
