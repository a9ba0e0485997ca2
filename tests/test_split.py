"""fruits_lib.split: blocks of frames kept on one side, seeded; labels dealt into the open-set folds."""

import pytest

from fruits_lib import split
from fruits_lib.support.errors import InputError


def test_fruit_group_is_a_block_of_frames():
    assert split.fruit_group("12_100.jpg") == "0"
    assert split.fruit_group("45_100.jpg") == "1"
    assert split.fruit_group("r_45_100.jpg") == "r_1"
    assert split.fruit_group("apple_003.jpg") == "apple_003.jpg"


def test_splits_keep_each_fruit_block_on_one_side_and_are_seeded():
    groups = {"kiwi": [str(g) for g in range(20)], "lime": ["a", "b", "c"]}
    splits = split.assign_splits(groups, seed=0, test=0.2, calibration=0.1)
    kiwi = [splits[("kiwi", g)] for g in groups["kiwi"]]
    assert kiwi.count("test") == 4 and kiwi.count("calibration") == 2 and kiwi.count("train") == 14
    assert sorted(splits[("lime", g)] for g in "abc") == ["calibration", "test", "train"]
    assert split.assign_splits(groups, seed=0) == splits
    assert split.assign_splits(groups, seed=1) != splits
    with pytest.raises(InputError, match="at least 3"):
        split.assign_splits({"fig": ["a", "b"]})


def test_class_folds_leave_each_label_out_once_and_keep_two():
    labels = [f"fruit {i}" for i in range(33)]
    folds = split.class_folds(labels, 4, seed=0)
    assert len(folds) == 4 and sorted(sum(folds, [])) == sorted(labels), "every label left out exactly once"
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    assert split.class_folds(labels, 4, seed=0) == folds and split.class_folds(labels, 4, seed=1) != folds
    assert sorted(split.class_folds(["a", "b", "c"], 4)) == [["a"], ["b"], ["c"]], "each model keeps two"
    assert split.class_folds(["a", "b"], 4) == [], "two labels: a model without one would learn one label"
    assert split.class_folds(labels, 1) == [], "one group would be every label"
