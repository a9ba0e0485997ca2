"""The AWS side of the launcher: boto3 clients (EU only), bucket, wheel and artifacts, cluster, steps.

boto3 is imported inside the functions, so the rest of the launcher stays import-light.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from fruits_emr.config import (
    EMR_DIR,
    JUPYTERHUB_PORT,
    PUBLIC_CIDRS,
    REPO_ROOT,
    WAIT_DELAY_SECONDS,
    check_region,
    s3_uri,
)


def make_client(service: str, region: str, endpoint_url: str | None = None):
    """A boto3 client from the default credential chain, only ever in an EU region."""
    import boto3

    check_region(region)
    kwargs = {"region_name": region}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    return boto3.session.Session().client(service, **kwargs)


def ensure_bucket(s3, bucket: str, region: str) -> bool:
    """Create the project bucket in ``region`` if missing; refuse one elsewhere; enforce privacy settings.

    Sets default encryption (SSE-S3) when none is configured and blocks all public access.
    Returns True when the bucket was created.
    """
    from botocore.exceptions import ClientError

    created = False
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise SystemExit(
                f"emr: bucket {bucket} exists but is not reachable with these credentials ({code})"
            ) from None
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
        created = True
    location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
    if location != region:
        raise SystemExit(
            f"emr: bucket {bucket} is in {location}, not {region}; refused (data must stay in {region})"
        )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    try:
        s3.get_bucket_encryption(Bucket=bucket)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "ServerSideEncryptionConfigurationNotFoundError":
            raise
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                        "BucketKeyEnabled": True,
                    }
                ]
            },
        )
    return created


def build_wheel(repo_root: Path = REPO_ROOT, out_dir: Path | None = None) -> Path:
    """Build the fruits_lib wheel with pip from a temporary copy (keeps build/ out of the work tree)."""
    out_dir = Path(out_dir or tempfile.mkdtemp(prefix="fruits-wheel-"))
    with tempfile.TemporaryDirectory(prefix="fruits-src-") as src:
        for name in ("pyproject.toml", "setup.cfg", "setup.py", "README.md", "LICENSE", "MANIFEST.in"):
            if (repo_root / name).is_file():
                shutil.copy2(repo_root / name, Path(src) / name)
        shutil.copytree(
            repo_root / "fruits_lib",
            Path(src) / "fruits_lib",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out_dir),
            src,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(out_dir.glob("fruits_lib-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel produced"]
        raise SystemExit(f"emr: building the fruits_lib wheel failed: {tail[0]}")
    return wheels[-1]


def upload_artifacts(s3, bucket: str, prefix: str, wheel: Path, data_dir: Path | None = None) -> list[str]:
    """Upload bootstrap.sh, fruits_main.py, requirements.txt, the wheel (and a data folder) under the prefix."""
    files = [
        (EMR_DIR / "bootstrap.sh", "bootstrap.sh"),
        (EMR_DIR / "fruits_main.py", "fruits_main.py"),
        (REPO_ROOT / "requirements.txt", "requirements.txt"),
        (Path(wheel), Path(wheel).name),
    ]
    uploaded = []
    for path, name in files:
        if not path.is_file():
            raise SystemExit(f"emr: missing artifact {path}")
        s3.upload_file(str(path), bucket, f"{prefix}/code/{name}")
        uploaded.append(s3_uri(bucket, prefix, "code", name))
    if data_dir is not None:
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise SystemExit(f"emr: --data {data_dir} is not a folder")
        for path in sorted(p for p in data_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
            rel = path.relative_to(data_dir).as_posix()
            s3.upload_file(str(path), bucket, f"{prefix}/data/{rel}")
            uploaded.append(s3_uri(bucket, prefix, "data", rel))
    return uploaded


def create_cluster(emr, request: dict) -> str:
    """Send RunJobFlow (after a last check that auto-termination is set) and return the cluster id."""
    if not request.get("AutoTerminationPolicy", {}).get("IdleTimeout"):
        raise SystemExit("emr: refusing to create a cluster without an idle auto-termination policy")
    return emr.run_job_flow(**request)["JobFlowId"]


def _wait(emr, waiter_name: str, minutes: float, delay: int = WAIT_DELAY_SECONDS, **ids: str) -> str | None:
    """Run a boto3 waiter; return None on success, else the error text (the caller explains)."""
    from botocore.exceptions import WaiterError

    attempts = max(1, int(minutes * 60 // delay))
    try:
        emr.get_waiter(waiter_name).wait(WaiterConfig={"Delay": delay, "MaxAttempts": attempts}, **ids)
    except WaiterError as err:
        return str(err)
    return None


def cluster_security_groups(cluster: dict) -> list[str]:
    """Security groups attached to the cluster's nodes, from DescribeCluster."""
    attrs = cluster.get("Ec2InstanceAttributes", {})
    groups = [
        attrs.get("EmrManagedMasterSecurityGroup"),
        attrs.get("EmrManagedSlaveSecurityGroup"),
        *attrs.get("AdditionalMasterSecurityGroups", []),
        *attrs.get("AdditionalSlaveSecurityGroups", []),
    ]
    return sorted({g for g in groups if g})


def revoke_public_ingress(ec2, group_ids: list[str]) -> list[str]:
    """Remove ingress rules open to 0.0.0.0/0 or ::/0 from the groups; returns what was revoked."""
    revoked = []
    if not group_ids:
        return revoked
    for sg in ec2.describe_security_groups(GroupIds=group_ids)["SecurityGroups"]:
        for perm in sg.get("IpPermissions", []):
            v4 = [r for r in perm.get("IpRanges", []) if r.get("CidrIp") in PUBLIC_CIDRS]
            v6 = [r for r in perm.get("Ipv6Ranges", []) if r.get("CidrIpv6") in PUBLIC_CIDRS]
            if not v4 and not v6:
                continue
            rule = {k: perm[k] for k in ("IpProtocol", "FromPort", "ToPort") if k in perm}
            ec2.revoke_security_group_ingress(
                GroupId=sg["GroupId"],
                IpPermissions=[
                    dict(
                        rule,
                        IpRanges=[{"CidrIp": r["CidrIp"]} for r in v4],
                        Ipv6Ranges=[{"CidrIpv6": r["CidrIpv6"]} for r in v6],
                    )
                ],
            )
            ports = f"{rule.get('FromPort', 'all')}-{rule.get('ToPort', 'all')}"
            for cidr in [r["CidrIp"] for r in v4] + [r["CidrIpv6"] for r in v6]:
                revoked.append(f"{sg['GroupId']} {rule['IpProtocol']}/{ports} from {cidr}")
    return revoked


def access_help(emr, cluster: dict, region: str) -> str:
    """How to reach JupyterHub (port 9443 of the primary node) without opening any port to the world."""
    cid = cluster["Id"]
    masters = emr.list_instances(ClusterId=cid, InstanceGroupTypes=["MASTER"]).get("Instances", [])
    instance_id = masters[0]["Ec2InstanceId"] if masters else "<primary-instance-id>"
    dns = cluster.get("MasterPublicDnsName") or "<primary-node-dns>"
    key = cluster.get("Ec2InstanceAttributes", {}).get("Ec2KeyName") or "<your-key>"
    params = json.dumps({"portNumber": [str(JUPYTERHUB_PORT)], "localPortNumber": [str(JUPYTERHUB_PORT)]})
    return "\n".join(
        [
            f"JupyterHub runs on port {JUPYTERHUB_PORT} of the primary node; reach it through a tunnel, either:",
            f"  SSM:  aws ssm start-session --region {region} --target {instance_id} "
            f"--document-name AWS-StartPortForwardingSession --parameters '{params}'",
            f"  SSH:  ssh -i ~/.ssh/{key}.pem -N -L {JUPYTERHUB_PORT}:localhost:{JUPYTERHUB_PORT} hadoop@{dns}",
            f"then open https://localhost:{JUPYTERHUB_PORT} (EMR's default user is jovyan; change its password).",
        ]
    )


def submit_step(
    emr,
    cluster_id: str,
    step: dict,
    wait: bool = True,
    wait_minutes: float = 180,
    delay: int = WAIT_DELAY_SECONDS,
) -> str:
    """Add the pipeline step to a running cluster; optionally wait for it and fail loudly if it fails."""
    step_id = emr.add_job_flow_steps(JobFlowId=cluster_id, Steps=[step])["StepIds"][0]
    print(f"step {step_id} added to {cluster_id}: {' '.join(step['HadoopJarStep']['Args'])}")
    if not wait:
        return step_id
    error = _wait(emr, "step_complete", wait_minutes, delay, ClusterId=cluster_id, StepId=step_id)
    if error:
        st = emr.describe_step(ClusterId=cluster_id, StepId=step_id)["Step"]["Status"]
        detail = (
            st.get("FailureDetails", {}).get("Reason") or st.get("StateChangeReason", {}).get("Message") or ""
        )
        raise SystemExit(f"emr: step {step_id} did not complete: state {st['State']} {detail}".rstrip())
    print(f"step {step_id} COMPLETED")
    return step_id


def status(emr, cluster_id: str) -> dict:
    """Print and return the cluster's state, idle timeout and latest steps."""
    c = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    steps = emr.list_steps(ClusterId=cluster_id).get("Steps", [])[:5]
    reason = c["Status"].get("StateChangeReason", {}).get("Message", "")
    print(
        f"{c['Id']}  {c['Status']['State']}  {c.get('Name', '')}  {c.get('ReleaseLabel', '')}"
        + (f"  ({reason})" if reason else "")
    )
    if c.get("MasterPublicDnsName"):
        print(f"  primary node: {c['MasterPublicDnsName']}")
    for s in steps:
        print(f"  step {s['Id']}  {s['Status']['State']:<10} {s.get('Name', '')}")
    return {
        "id": c["Id"],
        "state": c["Status"]["State"],
        "steps": [(s["Id"], s["Status"]["State"]) for s in steps],
    }


def terminate(
    emr, cluster_id: str, wait: bool = True, wait_minutes: float = 30, delay: int = WAIT_DELAY_SECONDS
) -> str:
    """Terminate the cluster (billing stops at TERMINATED) and say so; returns the last state seen."""
    state = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]["State"]
    if state.startswith("TERMINATED"):
        print(f"{cluster_id} is already {state}")
        return state
    emr.terminate_job_flows(JobFlowIds=[cluster_id])
    print(f"terminating {cluster_id} (was {state})")
    if wait:
        error = _wait(emr, "cluster_terminated", wait_minutes, delay, ClusterId=cluster_id)
        state = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]["State"]
        if error and not state.startswith("TERMINATED"):
            raise SystemExit(f"emr: {cluster_id} still {state}; check with `status` (it is shutting down)")
        print(f"{cluster_id} {state}: it no longer costs anything (the S3 bucket and its data remain)")
    return state
