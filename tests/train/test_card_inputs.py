"""What the card is made from: where the data came from, said without local paths."""

from __future__ import annotations

from hf_resnet101.config.options import DataArguments
from hf_resnet101.train.card_inputs import describe_data_source


def test_data_source_names_the_folders_last_two_parts_or_the_dataset():
    folders = DataArguments(train_dir="/home/me/secret/birds/train", validation_dir="/home/me/secret/birds/val")
    described = describe_data_source(folders)
    assert described == "image folder `birds/train` and `birds/val`" and "secret" not in described
    assert describe_data_source(DataArguments(dataset_name="cifar10")) == "the dataset `cifar10`"
