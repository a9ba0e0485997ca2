"""The split by fruit: Fruits-360 films each fruit turning, so consecutive frames are near-duplicates and a block
of frames goes to one side only (train, calibration or test), with all of its scenes."""

from __future__ import annotations

import re
import zlib

from fruits_lib.support.errors import InputError

FRAMES_PER_BLOCK = 40  # Fruits-360 frames of one fruit held out together (~1/8 of a turn)
OPEN_SET_FOLDS = 4  # models fitted without a quarter of the labels each, to measure answers on unlearnt fruits


def fruit_group(name: str) -> str:
    """The block of frames a Fruits-360 file belongs to (``r_12_100.jpg`` -> ``r_0``); other names are
    their own group."""
    found = re.match(r"^(r_|r2_|r3_)?(\d+)_\d+\.\w+$", name)
    if found is None:
        return name
    return f"{found.group(1) or ''}{int(found.group(2)) // FRAMES_PER_BLOCK}"


def assign_splits(groups: dict, seed: int = 0, test: float = 0.2, calibration: float = 0.1) -> dict:
    """``{(label, group): split}``: per label, groups ordered by a seeded hash; the first ``round(test * n)``
    (at least one) are test, the next ``round(calibration * n)`` (at least one) calibration, the rest train."""
    if not (0 < test < 1 and 0 < calibration < 1 and test + calibration < 1):
        raise ValueError(f"test ({test}) and calibration ({calibration}) shares must be in (0, 1), sum < 1")
    splits = {}
    for label, names in groups.items():
        order = sorted(set(names), key=lambda g: (zlib.crc32(f"{seed}/{label}/{g}".encode()), g))
        if len(order) < 3:
            raise InputError(f"label {label!r} has {len(order)} fruit group(s): at least 3 are needed to hold "
                             "out test and calibration photos")
        n_test = max(1, round(test * len(order)))
        n_cal = max(1, min(round(calibration * len(order)), len(order) - n_test - 1))
        for rank, group in enumerate(order):
            splits[(label, group)] = "test" if rank < n_test else "calibration" if rank < n_test + n_cal else "train"
    return splits


def class_folds(labels, folds: int = OPEN_SET_FOLDS, seed: int = 0) -> list:
    """``labels`` dealt, in a seeded order, into up to ``folds`` groups; each model of the open-set calibration
    is fitted without one group and keeps at least two labels."""
    order = sorted(labels, key=lambda label: (zlib.crc32(f"{seed}/fold/{label}".encode()), label))
    if len(order) < 3 or folds < 2:  # with fewer, a group would leave fewer than two labels to learn
        return []
    count = min(folds, len(order))
    return [order[i::count] for i in range(count)]
