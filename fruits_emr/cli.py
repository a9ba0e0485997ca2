"""``python -m fruits_emr plan|up|submit|status|down``: the launcher's command line (thin)."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from fruits_emr.aws import (
    _wait,
    access_help,
    build_wheel,
    cluster_security_groups,
    create_cluster,
    ensure_bucket,
    make_client,
    revoke_public_ingress,
    status,
    submit_step,
    terminate,
    upload_artifacts,
)
from fruits_emr.config import (
    DEFAULT_PREFIX,
    DEFAULT_REGION,
    ENDPOINT_ENV,
    ClusterConfig,
    build_cluster_request,
    check_bucket_name,
    check_region,
    fill_placeholders,
    load_json,
    parse_duration,
    pipeline_args,
    pipeline_step,
    s3_uri,
)
from fruits_emr.cost import estimate_hourly_cost, format_cost


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
        prog="python -m fruits_emr",
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
        print(f"not waiting; follow it with: python -m fruits_emr status --cluster-id {cluster_id}")
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
    print(f"stop it with: python -m fruits_emr down --cluster-id {cluster_id}")


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
    """Entry point of ``python -m fruits_emr``; AWS errors become one-line messages."""
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
