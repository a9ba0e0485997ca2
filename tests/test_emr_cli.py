"""fruits_emr.cli: plan needs no AWS; up, submit, status, down against a local moto server (helpers.aws)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile

import boto3
import pytest
from helpers.aws import REGION, REPO_ROOT, run_main

import fruits_emr as emr_mod

pytest_plugins = ["helpers.aws"]


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
