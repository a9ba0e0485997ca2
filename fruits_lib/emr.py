"""``python -m fruits_lib.emr``: run the Fruits! pipeline on Amazon EMR, in the EU only.

Subcommands: ``plan`` (print the create-cluster request and its hourly cost; no AWS call),
``up`` (bucket, artifacts, cluster), ``submit`` (the pipeline as an EMR step), ``status``, ``down``.

Guards: EU regions only (GDPR), checked before any client exists; an idle auto-termination
policy in every request (cost); security-group ingress from 0.0.0.0/0 or ::/0 revoked (security).
Credentials come only from boto3's default chain: this module never reads, stores or prints them.
Kept import-light (no boto3 at import time, no pyspark/tensorflow) so ``plan`` runs anywhere.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
EMR_DIR = REPO_ROOT / "emr"
DEFAULT_REGION = "eu-west-3"
DEFAULT_PREFIX = "fruits"
DEFAULT_IDLE_TIMEOUT = 3600
# AWS regions located in EU member states. London (eu-west-2) and Zurich (eu-central-2) are in Europe
# but not in the EU: refused too, so that "EU" means one thing here.
EU_REGIONS = {
    "eu-west-3": "Paris",
    "eu-west-1": "Ireland",
    "eu-central-1": "Frankfurt",
    "eu-north-1": "Stockholm",
    "eu-south-1": "Milan",
    "eu-south-2": "Spain",
}
ENDPOINT_ENV = "FRUITS_AWS_ENDPOINT_URL"
JUPYTERHUB_PORT = 9443
WAIT_DELAY_SECONDS = 30
PUBLIC_CIDRS = ("0.0.0.0/0", "::/0")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


# ----------------------------------------------------------------------------- guards and config
def check_region(region: str) -> str:
    """Return ``region`` if it is an EU region, else exit: GDPR keeps the photos and outputs in the EU."""
    if region not in EU_REGIONS:
        allowed = ", ".join(f"{r} ({city})" for r, city in EU_REGIONS.items())
        raise SystemExit(
            f"emr: region {region!r} is not an EU region; refused before any AWS call (GDPR). Use one of: {allowed}."
        )
    return region


def check_bucket_name(bucket: str) -> str:
    """Return ``bucket`` if it is a valid S3 bucket name (it ends up in ARNs and s3:// URIs)."""
    if not bucket or not _BUCKET_NAME.match(bucket) or ".." in bucket:
        raise SystemExit(
            f"emr: invalid bucket name {bucket!r} (3-63 chars: lowercase letters, digits, '.', '-')"
        )
    return bucket


def parse_duration(text: str | int) -> int:
    """Seconds from ``3600``, ``3600s``, ``90m`` or ``1h`` (the idle timeout is typed by humans)."""
    match = re.fullmatch(r"\s*(\d+)\s*([smh]?)\s*", str(text))
    if not match:
        raise SystemExit(f"emr: cannot read duration {text!r} (examples: 3600, 90m, 1h)")
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def check_idle_timeout(seconds: int) -> int:
    """Return ``seconds`` if EMR accepts it as IdleTimeout (60 s to 7 days), else exit."""
    if not 60 <= seconds <= 7 * 24 * 3600:
        raise SystemExit(f"emr: idle timeout must be between 60 s and 7 days, got {seconds} s")
    return seconds


def default_wheel_name() -> str:
    """The wheel file name ``pip wheel`` produces for this version of fruits_lib (used by ``plan``)."""
    import fruits_lib

    return f"fruits_lib-{getattr(fruits_lib, '__version__', '0.1.0')}-py3-none-any.whl"


@dataclass
class ClusterConfig:
    """What the command line can change in ``emr/cluster.json``; ``None`` keeps the template's value."""

    bucket: str
    prefix: str = DEFAULT_PREFIX
    region: str = DEFAULT_REGION
    name: str | None = None
    release_label: str | None = None
    master_type: str | None = None
    core_type: str | None = None
    core_count: int | None = None
    task_type: str | None = None
    task_count: int | None = None
    task_market: str | None = None
    idle_timeout: int | None = None
    step_only: bool = False
    run_args: list[str] = field(default_factory=list)
    subnet_id: str | None = None
    key_name: str | None = None
    master_sg: str | None = None
    core_sg: str | None = None
    wheel_name: str = field(default_factory=default_wheel_name)


def load_json(name: str) -> Any:
    """Read ``emr/<name>``: the cluster template, the price table or the IAM policy."""
    path = EMR_DIR / name
    if not path.is_file():
        raise SystemExit(f"emr: {path} not found (run the launcher from a checkout of the repository)")
    return json.loads(path.read_text(encoding="utf-8"))


def fill_placeholders(obj: Any, values: dict[str, str]) -> Any:
    """Replace ``{bucket}``-style placeholders in every string of a JSON-like tree; unknown ones are kept."""
    if isinstance(obj, dict):
        return {k: fill_placeholders(v, values) for k, v in obj.items()}
    if isinstance(obj, list):
        return [fill_placeholders(v, values) for v in obj]
    if isinstance(obj, str):
        return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), obj)
    return obj


def s3_uri(bucket: str, prefix: str, *parts: str) -> str:
    """``s3://bucket/prefix/part/...`` with exactly one slash between pieces."""
    pieces = [p.strip("/") for p in (prefix, *parts) if p and p.strip("/")]
    return "s3://" + "/".join([bucket, *pieces])


def pipeline_args(
    bucket: str,
    prefix: str,
    input_uri: str | None = None,
    output_uri: str | None = None,
    weights: str = "imagenet",
    extra: list[str] | None = None,
) -> list[str]:
    """The ``run`` arguments of the pipeline CLI; outputs must stay in the (EU) project bucket."""
    input_uri = input_uri or s3_uri(bucket, prefix, "data") + "/"
    output_uri = output_uri or s3_uri(bucket, prefix, "output") + "/"
    for what, uri in (("input", input_uri), ("output", output_uri)):
        if not uri.startswith("s3://"):
            raise SystemExit(f"emr: --{what} must be an s3:// URI on EMR, got {uri!r}")
    if not output_uri.startswith(f"s3://{bucket}/"):
        raise SystemExit(
            f"emr: --output must be inside s3://{bucket}/ (the project bucket, kept in the EU region)"
        )
    return ["run", "--input", input_uri, "--output", output_uri, "--weights", weights, *(extra or [])]


def pipeline_step(bucket: str, prefix: str, run_args: list[str], action_on_failure: str = "CONTINUE") -> dict:
    """The EMR step running the pipeline with ``spark-submit`` in client mode.

    Client mode: the driver runs on the primary node, so the pipeline's printed summary lands in the
    step's stdout log (S3) and the driver uses the bootstrapped venv and weights cache of that node.
    """
    script = s3_uri(bucket, prefix, "code", "fruits_main.py")
    return {
        "Name": "fruits-pipeline",
        "ActionOnFailure": action_on_failure,
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": ["spark-submit", "--deploy-mode", "client", script, *run_args],
        },
    }


def build_cluster_request(cfg: ClusterConfig, template: dict | None = None) -> dict:
    """The full RunJobFlow request from ``emr/cluster.json`` and ``cfg``; pure (no AWS call)."""
    check_region(cfg.region)
    check_bucket_name(cfg.bucket)
    values = {
        "bucket": cfg.bucket,
        "prefix": cfg.prefix.strip("/"),
        "region": cfg.region,
        "wheel": cfg.wheel_name,
    }
    req = fill_placeholders(
        copy.deepcopy(template if template is not None else load_json("cluster.json")), values
    )
    req["Name"] = cfg.name or req.get("Name") or "fruits-emr"
    req["ReleaseLabel"] = cfg.release_label or req.get("ReleaseLabel", "")
    if not req["ReleaseLabel"].startswith("emr-7."):
        raise SystemExit(
            f"emr: release label must be emr-7.x (Spark 3.5, Python 3.9), got {req['ReleaseLabel']!r}"
        )

    inst = req.setdefault("Instances", {})
    groups = {g["InstanceRole"]: g for g in inst.get("InstanceGroups", [])}
    for role in ("MASTER", "CORE", "TASK"):
        groups.setdefault(
            role,
            {
                "Name": role.lower(),
                "InstanceRole": role,
                "InstanceType": "m5.xlarge",
                "InstanceCount": 1 if role == "MASTER" else 0,
            },
        )
    _override(groups["MASTER"], cfg.master_type, None, None)
    _override(groups["CORE"], cfg.core_type, cfg.core_count, None)
    _override(groups["TASK"], cfg.task_type, cfg.task_count, cfg.task_market)
    if groups["MASTER"]["InstanceCount"] != 1:
        raise SystemExit("emr: this launcher runs exactly one primary (MASTER) node")
    inst["InstanceGroups"] = [g for g in groups.values() if g["InstanceCount"] > 0]
    for key, value in (
        ("Ec2SubnetId", cfg.subnet_id),
        ("Ec2KeyName", cfg.key_name),
        ("EmrManagedMasterSecurityGroup", cfg.master_sg),
        ("EmrManagedSlaveSecurityGroup", cfg.core_sg),
    ):
        if value:
            inst[key] = value
    inst["KeepJobFlowAliveWhenNoSteps"] = not cfg.step_only

    idle = cfg.idle_timeout or req.get("AutoTerminationPolicy", {}).get("IdleTimeout") or DEFAULT_IDLE_TIMEOUT
    req["AutoTerminationPolicy"] = {"IdleTimeout": check_idle_timeout(int(idle))}
    if cfg.step_only:
        run_args = cfg.run_args or pipeline_args(cfg.bucket, values["prefix"])
        req["Steps"] = [pipeline_step(cfg.bucket, values["prefix"], run_args, "TERMINATE_CLUSTER")]

    left = sorted(set(_PLACEHOLDER.findall(json.dumps(req))))
    if left:
        raise SystemExit(f"emr: unfilled placeholders in emr/cluster.json: {', '.join(left)}")
    return req


def _override(group: dict, instance_type: str | None, count: int | None, market: str | None) -> None:
    """Apply the command-line overrides to one instance group of the template."""
    if instance_type:
        group["InstanceType"] = instance_type
    if count is not None:
        if count < 0:
            raise SystemExit(f"emr: negative instance count for {group['InstanceRole']}")
        group["InstanceCount"] = count
    if market:
        group["Market"] = market


# ----------------------------------------------------------------------------- cost
def estimate_hourly_cost(instance_groups: list[dict], prices: dict) -> dict:
    """Hourly On-Demand cost (EC2 + EMR fee) of the instance groups from the small price table.

    Returns ``{"lines": [...], "total": float or None, "missing": [types]}``; Spot groups are costed
    at the On-Demand EC2 price, an upper bound (the EMR fee is the same for Spot).
    """
    table = prices.get("instances", {})
    lines, missing, total = [], [], 0.0
    for g in instance_groups:
        itype, count = g["InstanceType"], int(g["InstanceCount"])
        price = table.get(itype)
        if price is None:
            missing.append(itype)
            continue
        unit = float(price["ec2"]) + float(price["emr"])
        lines.append(
            {
                "role": g["InstanceRole"],
                "count": count,
                "type": itype,
                "market": g.get("Market", "ON_DEMAND"),
                "ec2": float(price["ec2"]),
                "emr": float(price["emr"]),
                "hourly": round(unit * count, 4),
            }
        )
        total += unit * count
    return {"lines": lines, "total": None if missing else round(total, 4), "missing": sorted(set(missing))}


def format_cost(estimate: dict, prices: dict, idle_timeout: int) -> str:
    """Human-readable cost block for ``plan``, with the table's date and source beside the numbers."""
    out = [f"estimated cost, {prices.get('region', '?')}, {prices.get('currency', 'USD')} per hour:"]
    for ln in estimate["lines"]:
        note = "  (Spot: upper bound)" if ln["market"] == "SPOT" else ""
        out.append(
            f"  {ln['role']:<6} {ln['count']} x {ln['type']:<11} ({ln['ec2']:.3f} EC2 + {ln['emr']:.3f} EMR)"
            f" = {ln['hourly']:.3f}/h{note}"
        )
    if estimate["missing"]:
        out.append(f"  total: unknown, no price for {', '.join(estimate['missing'])} in emr/prices.json")
    else:
        cap = estimate["total"] * idle_timeout / 3600
        out.append(
            f"  total ~ {estimate['total']:.3f}/h; a forgotten cluster stops after {idle_timeout // 60} min"
            f" idle (~{cap:.2f} of idle time)"
        )
    out.append(f"  prices as of {prices.get('as_of', '?')}: {prices.get('source', '?')}")
    out.append(f"  not included: {prices.get('excludes', 'EBS, S3, data transfer')}")
    return "\n".join(out)


# ----------------------------------------------------------------------------- AWS side
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


# ----------------------------------------------------------------------------- command line
def _config_from_args(args: argparse.Namespace) -> ClusterConfig:
    """ClusterConfig from the parsed options of ``plan``/``up``."""
    cfg = ClusterConfig(
        bucket=args.bucket,
        prefix=args.prefix.strip("/"),
        region=args.region,
        name=args.name,
        release_label=args.release_label,
        master_type=args.master_type,
        core_type=args.core_type,
        core_count=args.core_count,
        task_type=args.task_type,
        task_count=args.task_count,
        task_market=args.task_market,
        idle_timeout=parse_duration(args.idle_timeout) if args.idle_timeout else None,
        step_only=args.step_only,
        subnet_id=args.subnet_id,
        key_name=args.key_name,
        master_sg=args.master_sg,
        core_sg=args.core_sg,
    )
    if args.step_only:
        cfg.run_args = _run_args(args)
    return cfg


def _run_args(args: argparse.Namespace) -> list[str]:
    """Pipeline ``run`` arguments from the ``submit``/``up --step-only`` options."""
    extra = []
    if args.pca_k is not None:
        extra += ["--pca-k", str(args.pca_k)]
    if args.pca_variance is not None:
        extra += ["--pca-variance", str(args.pca_variance)]
    if args.batch_size is not None:
        extra += ["--batch-size", str(args.batch_size)]
    if args.mode:
        extra += ["--mode", args.mode]
    if args.overwrite:
        extra.append("--overwrite")
    return pipeline_args(args.bucket, args.prefix.strip("/"), args.input, args.output, args.weights, extra)


def _parser() -> argparse.ArgumentParser:
    """argparse definition: shared options in parent parsers, one subparser per subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--region", default=DEFAULT_REGION, help=f"EU region only (default {DEFAULT_REGION}, Paris)"
    )
    common.add_argument(
        "--endpoint-url",
        default=os.environ.get(ENDPOINT_ENV),
        help=f"AWS endpoint override, e.g. a local moto server (env {ENDPOINT_ENV})",
    )
    project = argparse.ArgumentParser(add_help=False)
    project.add_argument("--bucket", required=True, help="project bucket (created in the region by `up`)")
    project.add_argument(
        "--prefix", default=DEFAULT_PREFIX, help=f"key prefix in the bucket (default {DEFAULT_PREFIX})"
    )
    cluster = argparse.ArgumentParser(add_help=False)
    cluster.add_argument("--name")
    cluster.add_argument("--release-label", help="emr-7.x label (default: emr/cluster.json)")
    cluster.add_argument("--master-type")
    cluster.add_argument("--core-type")
    cluster.add_argument("--core-count", type=int)
    cluster.add_argument("--task-type")
    cluster.add_argument("--task-count", type=int, help="task nodes (default 0)")
    cluster.add_argument(
        "--task-market", choices=["SPOT", "ON_DEMAND"], help="task nodes market (default SPOT)"
    )
    cluster.add_argument("--idle-timeout", help="idle auto-termination, e.g. 1h, 90m, 3600 (default 1h)")
    cluster.add_argument(
        "--step-only",
        action="store_true",
        help="run the pipeline as the only step, then terminate (KeepJobFlowAliveWhenNoSteps=False)",
    )
    cluster.add_argument("--subnet-id")
    cluster.add_argument("--key-name", help="EC2 key pair, only needed for the SSH tunnel")
    cluster.add_argument("--master-sg", help="existing security group for the primary node")
    cluster.add_argument("--core-sg", help="existing security group for core/task nodes")
    run = argparse.ArgumentParser(add_help=False)
    run.add_argument("--input", help="s3:// input (default s3://BUCKET/PREFIX/data/)")
    run.add_argument("--output", help="s3:// output in the bucket (default s3://BUCKET/PREFIX/output/)")
    run.add_argument("--weights", default="imagenet")
    run.add_argument("--pca-k", type=int)
    run.add_argument("--pca-variance", type=float)
    run.add_argument("--batch-size", type=int)
    run.add_argument("--mode", choices=["full", "incremental"])
    run.add_argument("--overwrite", action="store_true")
    wait = argparse.ArgumentParser(add_help=False)
    wait.add_argument("--no-wait", action="store_true", help="return without waiting")
    wait.add_argument("--wait-minutes", type=float, default=None, help="give up waiting after this long")
    cid = argparse.ArgumentParser(add_help=False)
    cid.add_argument("--cluster-id", required=True)

    parser = argparse.ArgumentParser(
        prog="python -m fruits_lib.emr",
        description="Run the Fruits! pipeline on Amazon EMR, in EU regions only.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    plan = sub.add_parser(
        "plan",
        parents=[common, project, cluster, run],
        help="print the create-cluster request and its hourly cost (no AWS call)",
    )
    plan.add_argument(
        "--iam-policy", action="store_true", help="print emr/iam-policy.json filled in, and nothing else"
    )
    up = sub.add_parser("up", parents=[common, project, cluster, run, wait], help="bucket, uploads, cluster")
    up.add_argument("--wheel", type=Path, help="prebuilt fruits_lib wheel (default: build one)")
    up.add_argument("--data", type=Path, help="local folder uploaded to s3://BUCKET/PREFIX/data/")
    sub.add_parser(
        "submit", parents=[common, project, run, wait, cid], help="run the pipeline as an EMR step"
    )
    sub.add_parser("status", parents=[common, cid], help="cluster state and latest steps")
    sub.add_parser("down", parents=[common, cid, wait], help="terminate the cluster")
    return parser


def _cmd_plan(args: argparse.Namespace) -> None:
    """``plan``: print the request and the cost estimate; creates no client."""
    if args.iam_policy:
        policy = fill_placeholders(
            load_json("iam-policy.json"), {"bucket": args.bucket, "region": args.region}
        )
        print(json.dumps(policy, indent=2))
        return
    request = build_cluster_request(_config_from_args(args))
    prices = load_json("prices.json")
    estimate = estimate_hourly_cost(request["Instances"]["InstanceGroups"], prices)
    print(f"# create-cluster request (EMR RunJobFlow) in {args.region}; `plan` sends nothing")
    print(json.dumps(request, indent=2))
    print(format_cost(estimate, prices, request["AutoTerminationPolicy"]["IdleTimeout"]))


def _cmd_up(args: argparse.Namespace) -> None:
    """``up``: bucket (EU, encrypted, private), artifacts, cluster, wait, close public ingress, print access."""
    check_bucket_name(args.bucket)
    if args.wheel:
        _up(args, Path(args.wheel))
        return
    with tempfile.TemporaryDirectory(prefix="fruits-wheel-") as out_dir:
        _up(args, build_wheel(out_dir=Path(out_dir)))


def _up(args: argparse.Namespace, wheel: Path) -> None:
    """The body of ``up`` once the wheel exists."""
    if not wheel.is_file() or wheel.suffix != ".whl":
        raise SystemExit(f"emr: --wheel {wheel} is not a wheel file")
    cfg = _config_from_args(args)
    cfg.wheel_name = Path(wheel).name
    request = build_cluster_request(cfg)
    s3 = make_client("s3", args.region, args.endpoint_url)
    created = ensure_bucket(s3, args.bucket, args.region)
    print(
        f"bucket s3://{args.bucket} {'created' if created else 'exists'} in {args.region} (encrypted, private)"
    )
    uploaded = upload_artifacts(s3, args.bucket, cfg.prefix, wheel, args.data)
    print(f"uploaded {len(uploaded)} files under {s3_uri(args.bucket, cfg.prefix)}/")
    emr = make_client("emr", args.region, args.endpoint_url)
    cluster_id = create_cluster(emr, request)
    idle = request["AutoTerminationPolicy"]["IdleTimeout"]
    print(f"cluster {cluster_id} starting in {args.region}; auto-terminates after {idle // 60} min idle")
    if args.no_wait:
        print(f"not waiting; follow it with: python -m fruits_lib.emr status --cluster-id {cluster_id}")
        return
    waiter = "cluster_terminated" if args.step_only else "cluster_running"
    error = _wait(emr, waiter, args.wait_minutes or (240 if args.step_only else 60), ClusterId=cluster_id)
    cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    if error:
        reason = cluster["Status"].get("StateChangeReason", {}).get("Message", "")
        raise SystemExit(f"emr: cluster {cluster_id} is {cluster['Status']['State']}: {reason or error}")
    groups = cluster_security_groups(cluster)
    if groups and not args.step_only:
        for rule in revoke_public_ingress(make_client("ec2", args.region, args.endpoint_url), groups):
            print(f"revoked public ingress: {rule}")
    if args.step_only:
        status(emr, cluster_id)
        return
    print(f"cluster {cluster_id} is {cluster['Status']['State']}")
    print(access_help(emr, cluster, args.region))
    print(f"stop it with: python -m fruits_lib.emr down --cluster-id {cluster_id}")


def _cmd_submit(args: argparse.Namespace) -> None:
    """``submit``: check the bucket's region, add the pipeline step, wait for it unless --no-wait."""
    check_bucket_name(args.bucket)
    step = pipeline_step(args.bucket, args.prefix.strip("/"), _run_args(args))
    s3 = make_client("s3", args.region, args.endpoint_url)
    location = s3.get_bucket_location(Bucket=args.bucket).get("LocationConstraint") or "us-east-1"
    if location != args.region:
        raise SystemExit(f"emr: bucket {args.bucket} is in {location}, not {args.region}; refused")
    emr = make_client("emr", args.region, args.endpoint_url)
    submit_step(emr, args.cluster_id, step, wait=not args.no_wait, wait_minutes=args.wait_minutes or 180)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m fruits_lib.emr``; AWS errors become one-line messages."""
    args = _parser().parse_args(argv)
    check_region(args.region)  # before anything else, in particular before any client exists
    try:
        if args.command == "plan":
            _cmd_plan(args)
        elif args.command == "up":
            _cmd_up(args)
        elif args.command == "submit":
            _cmd_submit(args)
        elif args.command == "status":
            status(make_client("emr", args.region, args.endpoint_url), args.cluster_id)
        elif args.command == "down":
            terminate(
                make_client("emr", args.region, args.endpoint_url),
                args.cluster_id,
                wait=not args.no_wait,
                wait_minutes=args.wait_minutes or 30,
            )
    except _aws_errors() as err:
        raise SystemExit(f"emr: {args.command} failed: {_aws_error(err)}") from None


def _aws_errors() -> tuple:
    """botocore's exception classes, or none at all when boto3 is not installed (``plan`` still works)."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return ()
    return (BotoCoreError, ClientError)


def _aws_error(err: Exception) -> str:
    """One line from a botocore error (never includes credentials)."""
    response = getattr(err, "response", None)
    if isinstance(response, dict) and "Error" in response:
        e = response["Error"]
        return f"{e.get('Code', '?')}: {e.get('Message', '')}".strip()
    if type(err).__name__ == "NoCredentialsError":
        return "no AWS credentials found by boto3's default chain (env, ~/.aws, SSO, instance role)"
    return str(err).splitlines()[0]


if __name__ == "__main__":
    main()
