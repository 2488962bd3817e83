"""Datasets: folders of HR images with bicubic degradation, the DIV2K layout, the embedded default
photos, named benchmark sets, and random training patches through ``tf.data``."""

from mobile_sr.data.sr import (
    SRPair,
    describe_pairs,
    load_sr_pairs,
    split_train_val,
)
from mobile_sr.data.locations import resolve_dataset, shared_datasets_dir

__all__ = [
    "SRPair",
    "describe_pairs",
    "load_sr_pairs",
    "resolve_dataset",
    "shared_datasets_dir",
    "split_train_val",
]
