"""fruits_emr.config: EU guards, the cluster request (auto-termination, Spot tasks, step-only), durations."""

from __future__ import annotations

import json
import re

import pytest

import fruits_emr as emr_mod


@pytest.mark.parametrize(
    "region", ["eu-west-3", "eu-west-1", "eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2"]
)
def test_eu_regions_are_accepted(region):
    assert emr_mod.check_region(region) == region


@pytest.mark.parametrize(
    "region", ["us-east-1", "eu-west-2", "eu-central-2", "ap-southeast-1", "", "EU-WEST-3"]
)
def test_non_eu_regions_are_refused_with_a_clear_message(region):
    with pytest.raises(SystemExit, match=r"^emr: region .* is not an EU region.*eu-west-3 \(Paris\)"):
        emr_mod.check_region(region)


def test_cluster_request_from_the_template_has_everything_the_issue_asks_for():
    req = emr_mod.build_cluster_request(emr_mod.ClusterConfig(bucket="demo-bucket"))
    assert req["ReleaseLabel"].startswith("emr-7.")
    assert {a["Name"] for a in req["Applications"]} == {"Hadoop", "Spark", "Livy", "JupyterHub"}
    assert req["AutoTerminationPolicy"] == {"IdleTimeout": 3600}
    assert req["Instances"]["KeepJobFlowAliveWhenNoSteps"] is True
    assert [g["InstanceRole"] for g in req["Instances"]["InstanceGroups"]] == ["MASTER", "CORE"]
    assert req["LogUri"] == "s3://demo-bucket/fruits/emr-logs/"
    assert req["JobFlowRole"] == "EMR_EC2_DefaultRole" and req["ServiceRole"] == "EMR_DefaultRole"
    boot = req["BootstrapActions"][0]["ScriptBootstrapAction"]
    assert boot["Path"] == "s3://demo-bucket/fruits/code/bootstrap.sh"
    assert boot["Args"] == ["s3://demo-bucket/fruits/code", emr_mod.default_wheel_name()]

    conf = {c["Classification"]: c for c in req["Configurations"]}
    spark = conf["spark-defaults"]["Properties"]
    assert spark["spark.sql.execution.arrow.pyspark.enabled"] == "true"
    assert (
        spark["spark.pyspark.python"] == spark["spark.pyspark.driver.python"] == "/opt/fruits/venv/bin/python"
    )
    assert spark["spark.executor.memory"] and spark["spark.executor.memoryOverhead"]
    assert spark["spark.python.worker.reuse"] == "true"
    assert spark["spark.executorEnv.FRUITS_CACHE_DIR"] == "/opt/fruits/cache"
    export = conf["spark-env"]["Configurations"][0]
    assert export["Classification"] == "export"
    assert export["Properties"] == {
        "PYSPARK_PYTHON": "/opt/fruits/venv/bin/python",
        "FRUITS_CACHE_DIR": "/opt/fruits/cache",
    }
    assert conf["jupyter-s3-conf"]["Properties"] == {
        "s3.persistence.enabled": "true",
        "s3.persistence.bucket": "demo-bucket",
    }
    assert not re.search(r"\{[a-z_]+\}", json.dumps(req)), "placeholder left in the request"


def test_cluster_request_options_step_only_spot_tasks_and_idle_timeout():
    cfg = emr_mod.ClusterConfig(
        bucket="demo-bucket",
        prefix="demo/",
        task_count=3,
        core_count=1,
        idle_timeout=emr_mod.parse_duration("90m"),
        step_only=True,
        subnet_id="subnet-123",
        key_name="me",
    )
    req = emr_mod.build_cluster_request(cfg)
    groups = {g["InstanceRole"]: g for g in req["Instances"]["InstanceGroups"]}
    assert groups["TASK"]["Market"] == "SPOT" and groups["TASK"]["InstanceCount"] == 3
    assert groups["CORE"]["Market"] == "ON_DEMAND" and groups["CORE"]["InstanceCount"] == 1
    assert req["AutoTerminationPolicy"] == {"IdleTimeout": 5400}
    assert req["Instances"]["KeepJobFlowAliveWhenNoSteps"] is False
    assert req["Instances"]["Ec2SubnetId"] == "subnet-123" and req["Instances"]["Ec2KeyName"] == "me"
    (step,) = req["Steps"]
    assert step["ActionOnFailure"] == "TERMINATE_CLUSTER"
    args = step["HadoopJarStep"]["Args"]
    assert step["HadoopJarStep"]["Jar"] == "command-runner.jar"
    assert args[:4] == [
        "spark-submit",
        "--deploy-mode",
        "client",
        "s3://demo-bucket/demo/code/fruits_main.py",
    ]
    assert args[4:] == [
        "run",
        "--input",
        "s3://demo-bucket/demo/data/",
        "--output",
        "s3://demo-bucket/demo/output/",
        "--weights",
        "imagenet",
    ]
    ondemand = emr_mod.build_cluster_request(
        emr_mod.ClusterConfig(bucket="demo-bucket", task_count=1, task_market="ON_DEMAND")
    )
    assert ondemand["Instances"]["InstanceGroups"][-1]["Market"] == "ON_DEMAND"


def test_auto_termination_is_never_absent_even_if_the_template_forgets_it():
    template = emr_mod.load_json("cluster.json")
    template.pop("AutoTerminationPolicy")
    req = emr_mod.build_cluster_request(emr_mod.ClusterConfig(bucket="demo-bucket"), template=template)
    assert req["AutoTerminationPolicy"] == {"IdleTimeout": emr_mod.DEFAULT_IDLE_TIMEOUT}
    with pytest.raises(SystemExit, match="without an idle auto-termination"):
        emr_mod.create_cluster(object(), {k: v for k, v in req.items() if k != "AutoTerminationPolicy"})


@pytest.mark.parametrize(("text", "seconds"), [("3600", 3600), ("3600s", 3600), ("90m", 5400), ("1h", 3600)])
def test_parse_duration(text, seconds):
    assert emr_mod.parse_duration(text) == seconds


@pytest.mark.parametrize(
    "bad",
    [
        {"idle_timeout": 30},
        {"idle_timeout": 8 * 24 * 3600},
        {"bucket": "Bad_Bucket"},
        {"release_label": "emr-6.15.0"},
        {"region": "us-west-2"},
    ],
)
def test_cluster_request_refuses_bad_settings(bad):
    fields = {"bucket": "demo-bucket", **bad}
    with pytest.raises(SystemExit, match="^emr: "):
        emr_mod.build_cluster_request(emr_mod.ClusterConfig(**fields))


def test_the_notebook_and_the_launcher_agree_on_the_eu_regions():
    """02_emr checks its region with fruits_lib.support.notebook (no launcher on the nodes): same list."""
    from fruits_lib.support import notebook

    assert set(notebook.EU_REGIONS) == set(emr_mod.EU_REGIONS)
    assert notebook.check_region("eu-west-3") == "eu-west-3"
    with pytest.raises(ValueError, match="not an EU region"):
        notebook.check_region("eu-west-2")  # London: in Europe, not in the EU
