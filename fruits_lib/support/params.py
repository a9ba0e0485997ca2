"""Spark ML typeConverters that also validate: a bad value is refused with one line when a Param is set."""

from __future__ import annotations

from pyspark.ml.param import TypeConverters


def checked(convert, valid, expected: str):
    """A typeConverter: Spark's ``convert``, then a one-line ValueError unless ``valid(value)``."""
    def converter(value):
        value = convert(value)
        if not valid(value):
            raise ValueError(f"{expected}, not {value!r}")
        return value
    return converter


def one_of(name: str, allowed: tuple):
    """A string among ``allowed``."""
    return checked(TypeConverters.toString, allowed.__contains__,
                   f"{name} must be {', '.join(allowed[:-1])} or {allowed[-1]}")


def int_between(name: str, low: int, high: int, unit: str = ""):
    """An int in ``[low, high]``."""
    return checked(TypeConverters.toInt, lambda v: low <= v <= high, f"{name} must be between {low} and {high}{unit}")


def distinct_names(name: str):
    """A non-empty list of distinct, non-empty strings."""
    return checked(TypeConverters.toListString, lambda v: v and all(v) and len(set(v)) == len(v),
                   f"{name} must be a non-empty list of distinct names")
