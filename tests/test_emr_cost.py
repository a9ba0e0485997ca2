"""fruits_emr.cost: hourly cost from the price table, and the runbook's demo cost."""

from __future__ import annotations

import pytest
from helpers.aws import REGION, REPO_ROOT

import fruits_emr as emr_mod


def test_hourly_cost_comes_from_the_price_table():
    prices = emr_mod.load_json("prices.json")
    assert prices["region"] == REGION and prices["as_of"] and "approximate list prices" in prices["source"]
    m5 = prices["instances"]["m5.xlarge"]
    groups = [
        {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
        {"InstanceRole": "CORE", "InstanceType": "m5.xlarge", "InstanceCount": 2},
        {"InstanceRole": "TASK", "InstanceType": "m5.xlarge", "InstanceCount": 2, "Market": "SPOT"},
    ]
    est = emr_mod.estimate_hourly_cost(groups, prices)
    assert est["total"] == pytest.approx(5 * (m5["ec2"] + m5["emr"]))
    assert [ln["hourly"] for ln in est["lines"]] == pytest.approx(
        [m5["ec2"] + m5["emr"], 2 * (m5["ec2"] + m5["emr"]), 2 * (m5["ec2"] + m5["emr"])]
    )
    text = emr_mod.format_cost(est, prices, 3600)
    assert prices["as_of"] in text and "approximate list prices" in text and "Spot: upper bound" in text
    unknown = emr_mod.estimate_hourly_cost(
        [{"InstanceRole": "CORE", "InstanceType": "x9.huge", "InstanceCount": 1}], prices
    )
    assert unknown["total"] is None and unknown["missing"] == ["x9.huge"]


def test_runbook_demo_cost_matches_the_price_table():
    """docs/emr.md quotes the cost of the demo (1 primary + 2 core m5.xlarge, 2 h): keep it in sync."""
    prices = emr_mod.load_json("prices.json")
    req = emr_mod.build_cluster_request(emr_mod.ClusterConfig(bucket="demo-bucket"))
    hourly = emr_mod.estimate_hourly_cost(req["Instances"]["InstanceGroups"], prices)["total"]
    runbook = (REPO_ROOT / "docs" / "emr.md").read_text(encoding="utf-8")
    assert f"{hourly:.3f}" in runbook
    assert f"{2 * hourly:.2f}" in runbook
    assert prices["as_of"] in runbook
