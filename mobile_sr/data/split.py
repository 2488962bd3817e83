"""Holding out part of a training set for validation, whatever its items are."""

from __future__ import annotations

from mobile_sr.core.errors import DatasetError


def split_train_val(items: list, *, val_fraction: float = 0.05, max_val: int = 10) -> tuple[list, list]:
    """Hold out every k-th item (image, scene; deterministic) for validation: at least 1, at most
    ``max_val``."""
    if len(items) < 2:
        raise DatasetError(
            f"{len(items)} image(s) cannot be split into training and validation; add images or "
            "pass a separate validation folder"
        )
    count = min(max_val, max(1, round(len(items) * val_fraction)))
    step = len(items) / count
    val_indices = {int(i * step + step / 2) for i in range(count)}
    train = [item for i, item in enumerate(items) if i not in val_indices]
    val = [item for i, item in enumerate(items) if i in val_indices]
    return train, val
