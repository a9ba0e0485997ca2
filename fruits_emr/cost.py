"""The hourly cost of a cluster request, from the small price table ``emr/prices.json``."""

from __future__ import annotations


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
