"""The "unknown" rule: thresholds chosen on held-out scores, the studio gate's scores, and the rule applied."""

import numpy as np
import pytest

from fruits_lib import unknown
from fruits_lib.unknown import AbstainRule, StudioGate


def test_threshold_answers_only_where_right_answers_outnumber_wrong_ones():
    confidence = np.linspace(0.01, 1.0, 100)
    assert unknown.choose_threshold(np.ones(100, bool), confidence) == 0.0, "never wrong: always answer"
    assert unknown.choose_threshold(confidence >= 0.4, confidence) == 0.4, "wrong below 0.4: unknown there"
    mixed = (np.arange(100) % 3 == 0) | (confidence > 0.705)  # above 0.7 all right, below a third right
    assert unknown.choose_threshold(mixed, confidence) == 0.7, "0.70 itself is right (index 69): +1"
    with pytest.raises(ValueError, match="no calibration photo"):
        unknown.choose_threshold([], [])


def test_open_set_threshold_refuses_the_asked_share_of_unlearnt_fruits():
    confidence = np.linspace(0.005, 0.995, 100)  # photos of fruits a model did not learn: how sure it was
    assert unknown.threshold_refusing(confidence, 0.6) == 0.6, "60 of the 100 fall under 0.60"
    assert unknown.threshold_refusing(confidence, 0.0) == 0.0, "0: no open-set rule"
    assert unknown.threshold_refusing(np.full(10, 0.999), 0.5) == 1.0, "sure of them all: only 1.0 refuses"
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        unknown.threshold_refusing(confidence, 1.0)
    with pytest.raises(ValueError, match="no photo of an unlearnt fruit"):
        unknown.threshold_refusing([], 0.5)


def _gate() -> StudioGate:
    """A 3-d projection space; the bank holds two studio photos, (1, 0, 0) and (0, 1, 0), once whitened."""
    bank = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    return StudioGate(scale=np.array([2.0, 1.0, 1.0]), bank=bank, head=np.array([0.0, 0.0, 4.0]), intercept=-2.0)


def test_gate_scores_whitened_cosine_to_the_nearest_studio_photo_and_a_logistic_head():
    likeness, nearest = _gate().score([[6.0, 0.0, 0.0], [0.0, 0.0, 5.0], [2.0, 1.0, 0.0], [4.0, 0.0, 1.0]])
    # whitened: (3, 0, 0) -> 1.0; (0, 0, 5) -> 0.0; (1, 1, 0) -> 1/sqrt(2); (2, 0, 1) -> 2/sqrt(5)
    assert np.allclose(nearest, [1.0, 0.0, 2 ** -0.5, 2 / 5 ** 0.5], atol=1e-6)
    assert np.allclose(likeness, 1 / (1 + np.exp(-np.array([-2.0, 18.0, -2.0, 2.0]))))
    copy = StudioGate.from_bytes(_gate().to_bytes())
    assert np.array_equal(copy.bank, _gate().bank) and copy.intercept == -2.0
    assert np.allclose(copy.score([[6.0, 0.0, 0.0]])[1], 1.0)


def test_rule_judges_studio_like_photos_by_their_nearest_studio_photo_and_others_by_probability():
    rule = AbstainRule(threshold=0.6, similarity=0.8, gate=_gate())
    probability = [0.99, 0.3, 0.99, 0.3]
    likeness = [0.9, 0.9, 0.1, 0.1]  # two studio-like photos, two others
    nearest = [0.5, 0.95, 0.99, 0.99]
    reasons = rule.refusals(probability, likeness, nearest)
    assert reasons[0] == "no studio photo learnt is close: nearest 0.50 < 0.80", "sure, but unlike any studio photo"
    assert reasons[1] is None, "studio-like and close to one learnt: answered, however unsure"
    assert reasons[2] is None and reasons[3] == "not confident enough", "the others: probability only"
    assert list(rule.answered(probability, likeness, nearest)) == [False, True, True, False]
    without = AbstainRule(threshold=0.6)
    assert list(without.answered(probability)) == [True, False, True, False], "no gate: probability for all"
    assert "nearest studio photo under 0.80" in rule.describe() and without.describe() == "best probability under 0.60"


def test_studio_like_photos_are_named_by_the_studio_classifier():
    gate = StudioGate(_gate().scale, _gate().bank, _gate().head, _gate().intercept,
                      coefficients=np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), intercepts=np.zeros(2))
    studio = gate.probabilities([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert np.allclose(studio[0], [np.exp(2) / (np.exp(2) + 1), 1 / (np.exp(2) + 1)]) and np.allclose(studio[1], 0.5)
    copy = StudioGate.from_bytes(gate.to_bytes())
    assert np.array_equal(copy.coefficients, gate.coefficients) and StudioGate.from_bytes(_gate().to_bytes()).coefficients is None
    model = [[0.1, 0.9], [0.1, 0.9]]
    named = AbstainRule(gate=gate).naming(model, [0.9, 0.1], studio)
    assert np.allclose(named[0], studio[0]) and np.allclose(named[1], model[1]), "studio-like: the studio classifier"
    assert np.allclose(AbstainRule(gate=_gate()).naming(model, [0.9, 0.1], studio), model), "no classifier: the model's"


def test_a_model_without_metrics_always_answers(spark, tmp_path):
    assert unknown.load_rule(spark, str(tmp_path)) == AbstainRule()


def test_gate_columns_are_doubles_scored_on_the_executors_and_typed_nulls_without_a_gate(spark):
    """identify unions scored rows with failed ones and writes JSON numbers: the types must hold either way."""
    from dataclasses import replace

    from pyspark.ml.linalg import Vectors
    from pyspark.sql.types import ArrayType, DoubleType

    gate = replace(_gate(), coefficients=np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), intercepts=np.zeros(2))
    frame = spark.createDataFrame([(Vectors.dense([6.0, 0.0, 0.0]),), (Vectors.dense([0.0, 0.0, 5.0]),)], ["pca"])
    expected = {"studio_likeness": DoubleType(), "nearest_studio": DoubleType(),
                unknown.STUDIO_PROBABILITY: ArrayType(DoubleType())}
    for scored in (unknown.gate_columns(frame, gate), unknown.gate_columns(frame, None)):
        assert {f.name: f.dataType for f in scored.schema.fields if f.name in expected} == expected
    rows = unknown.gate_columns(frame, gate).collect()
    assert [round(r["nearest_studio"], 6) for r in rows] == [1.0, 0.0]
    assert rows[0]["studio_probability"][0] > rows[0]["studio_probability"][1]
    assert all(r["nearest_studio"] is None for r in unknown.gate_columns(frame, None).collect())
