"""The EMR cluster request: EU-only guards, the cluster configuration and the pipeline step.

Pure functions over ``emr/cluster.json`` (data files stay in ``emr/``): no AWS call, no boto3 import,
so ``plan`` and the tests run anywhere.
"""

from __future__ import annotations

import copy
import json
import re
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
