"""Figures derived from the source files (cost per hour, projections, crossover): computed, never typed."""

from __future__ import annotations

from slides.sources import Missing, field, first_missing

PROJECTION_IMAGES = (1_000_000, 10_000_000)  # the volumes the issue asks about
PROJECTION_EXTRA_CORE_NODES = 10  # a larger cluster beside the one in emr/cluster.json
ROLE_NAMES = {"MASTER": "primary", "CORE": "core", "TASK": "task"}  # EMR's current names for the groups


def instance_groups(cluster) -> list:
    """``(role, count, type, market)`` of each instance group of ``emr/cluster.json``."""
    groups = field(cluster, "Instances.InstanceGroups", "emr/cluster.json")
    if isinstance(groups, Missing):
        return groups
    return [(ROLE_NAMES.get(g["InstanceRole"], g["InstanceRole"].lower()), int(g["InstanceCount"]),
             g["InstanceType"], g.get("Market", "ON_DEMAND")) for g in groups]


def hourly_cost(cluster, prices, core_nodes: int | None = None):
    """``{"lines": [(role, count, type, $/h each, $/h)], "total": $/h}`` of the cluster (EC2 + EMR fee).

    Spot groups are costed at the On-Demand price (an upper bound), as the launcher does.
    ``core_nodes`` replaces the core group's count (for projections). ``Missing`` if a file or price is absent.
    """
    groups = instance_groups(cluster)
    if isinstance(groups, Missing):
        return groups
    if isinstance(prices, Missing):
        return prices
    lines, total = [], 0.0
    for role, count, itype, _market in groups:
        if role == "core" and core_nodes is not None:
            count = core_nodes
        if not count:
            continue
        price = prices.get("instances", {}).get(itype)
        if price is None:
            return Missing(f"emr/prices.json instances[{itype}]")
        unit = float(price["ec2"]) + float(price["emr"])
        lines.append((role, count, itype, unit, count * unit))
        total += count * unit
    return {"lines": lines, "total": total}


def core_vcpus(cluster, prices, core_nodes: int | None = None):
    """vCPUs of the core group (the executors' cores), from the cluster definition and the price table."""
    groups = instance_groups(cluster)
    if isinstance(groups, Missing) or isinstance(prices, Missing):
        return groups if isinstance(groups, Missing) else prices
    for role, count, itype, _market in groups:
        if role == "core":
            nodes = count if core_nodes is None else core_nodes
            vcpu = prices.get("instances", {}).get(itype, {}).get("vcpu")  # itype has dots: no field()
            if vcpu is None:
                return Missing(f"emr/prices.json instances[{itype}].vcpu")
            return nodes, itype, nodes * int(vcpu)
    return Missing("emr/cluster.json core instance group")


def images_per_second_per_core(bench):
    """The pipeline's marginal rate per core: 1 / (slope of wall time vs N x the benchmark machine's cores)."""
    slope = field(bench, "runs.scaling_fit_wall.slope_s_per_image", "bench/results.json")
    cores = field(bench, "machine.logical_cpus", "bench/results.json")
    missing = first_missing(slope, cores)
    if missing is not None:
        return missing
    return 1.0 / (slope * cores)


def crossover_images(bench):
    """N above which the pipeline beats the plain loop, from both least-squares lines of the benchmark."""
    pipeline = field(bench, "runs.scaling_fit_wall", "bench/results.json")
    plain = field(bench, "runs.scaling_plain_fit_wall", "bench/results.json")
    missing = first_missing(pipeline, plain)
    if missing is not None:
        return missing
    gain = plain["slope_s_per_image"] - pipeline["slope_s_per_image"]
    if gain <= 0:
        return Missing("bench/results.json (the pipeline's slope is not below the plain loop's)")
    return (pipeline["intercept_s"] - plain["intercept_s"]) / gain


def projections(bench, cluster, prices) -> object:
    """Featurizing time and compute cost at 1M and 10M images on the EMR cluster and on a larger one.

    Optimistic: one m5 vCPU counted as one core of the benchmark machine (not measured on EMR);
    excludes the cluster's start-up and the run's fixed cost.
    """
    rate = images_per_second_per_core(bench)
    if isinstance(rate, Missing):
        return rate
    shapes = []
    base = core_vcpus(cluster, prices)
    if isinstance(base, Missing):
        return base
    shapes.append(None)
    if base[0] != PROJECTION_EXTRA_CORE_NODES:
        shapes.append(PROJECTION_EXTRA_CORE_NODES)
    rows = []
    for images in PROJECTION_IMAGES:
        for core_nodes in shapes:
            nodes, itype, vcpus = core_vcpus(cluster, prices, core_nodes)
            cost = hourly_cost(cluster, prices, core_nodes)
            if isinstance(cost, Missing):
                return cost
            seconds = images / (rate * vcpus)
            rows.append({"images": images, "core_nodes": nodes, "type": itype, "vcpus": vcpus,
                         "minutes": seconds / 60, "dollars": seconds / 3600 * cost["total"],
                         "per_hour": cost["total"]})
    return {"rate_per_core": rate, "rows": rows}
