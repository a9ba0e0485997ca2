"""``docs/architecture.png``: the cloud architecture drawn by code (diagrams' AWS icons over Graphviz).

Node types, counts, release, roles and region are read from ``emr/cluster.json`` and
``emr/prices.json``, so the picture follows the cluster definition. Needs Graphviz's ``dot``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from slides.sources import Missing, field

ORANGE, GREY, BLUE = "#d6604d", "#6b7280", "#2b6cb0"


class GraphvizMissing(RuntimeError):
    """Graphviz's ``dot`` is not installed: the diagram cannot be drawn."""


def draw(cluster, prices, out: Path, dpi: int = 90) -> Path:
    """Draw the architecture to ``out`` (PNG) and return it; raises ``GraphvizMissing`` without ``dot``."""
    if shutil.which("dot") is None:
        raise GraphvizMissing("Graphviz's `dot` is not installed (apt-get install -y graphviz): "
                              "cannot draw docs/architecture.png")
    from diagrams import Cluster, Diagram, Edge
    from diagrams.aws.analytics import EMR
    from diagrams.aws.general import User
    from diagrams.aws.management import SystemsManager
    from diagrams.aws.security import IAMRole
    from diagrams.aws.storage import SimpleStorageServiceS3Bucket
    from diagrams.onprem.analytics import Spark
    from diagrams.onprem.client import Client
    from diagrams.programming.language import Python

    def value(data, dotted, file):
        found = field(data, dotted, file)
        return "?" if isinstance(found, Missing) else found

    region = value(prices, "region", "emr/prices.json")
    release = value(cluster, "ReleaseLabel", "emr/cluster.json")
    groups = {g["InstanceRole"]: g for g in (value(cluster, "Instances.InstanceGroups", "emr/cluster.json") or [])
              if isinstance(g, dict)}
    primary, core = groups.get("MASTER", {}), groups.get("CORE", {})
    core_count = int(core.get("InstanceCount", 1))
    idle = value(cluster, "AutoTerminationPolicy.IdleTimeout", "emr/cluster.json")
    idle_text = f"{idle / 3600:g} h" if isinstance(idle, (int, float)) else "?"

    out.parent.mkdir(parents=True, exist_ok=True)
    graph = {"fontsize": "20", "fontname": "Helvetica", "pad": "0.3", "nodesep": "0.45", "ranksep": "0.9",
             "dpi": str(dpi), "splines": "spline"}
    with Diagram("", filename=str(out.with_suffix("")), outformat="png", show=False, direction="LR",
                 graph_attr=graph, node_attr={"fontsize": "14"}):
        with Cluster("your laptop", graph_attr={"bgcolor": "#f3f4f6", "fontsize": "16"}):
            user = User("launcher:\npython -m\nfruits_emr")
            browser = Client("browser:\nJupyterHub")
        with Cluster(f"AWS region {region} (EU only: GDPR)",
                     graph_attr={"bgcolor": "#eef5ff", "fontsize": "18", "style": "dashed"}):
            ssm = SystemsManager("SSM tunnel\n(no public port)")
            bucket = SimpleStorageServiceS3Bucket("S3 bucket\n(encrypted, private)\n"
                                                  "data/: photos\ncode/: wheel\noutput/: results")
            with Cluster("IAM", graph_attr={"fontsize": "16"}):
                service_role = IAMRole(f"{value(cluster, 'ServiceRole', 'emr/cluster.json')}\n(EMR service)")
                instance_role = IAMRole(f"{value(cluster, 'JobFlowRole', 'emr/cluster.json')}\n"
                                        "(nodes; S3: project\nbucket only)")
            with Cluster(f"EMR {release}, auto-terminates after {idle_text} idle",
                         graph_attr={"bgcolor": "#fff7ed", "fontsize": "16"}):
                with Cluster(f"primary node ({primary.get('InstanceType', '?')})", graph_attr={"fontsize": "15"}):
                    hub = EMR("JupyterHub + Livy")
                    driver = Spark("Spark driver:\nbuilds the model once,\nbroadcasts it")
                executors = []
                for index in range(core_count):
                    with Cluster(f"core node {index + 1} ({core.get('InstanceType', '?')})", graph_attr={"fontsize": "15"}):
                        executor = Spark("executor")
                        workers = Python("Python workers:\nload model once")
                        executor >> Edge(color=ORANGE, label="once per worker") >> workers
                        executors.append(executor)
        user >> Edge(color=GREY, label="boto3: up, submit,\nstatus, down") >> service_role
        user >> Edge(color=GREY, headport="w", label="upload") >> bucket
        browser >> Edge(color=GREY, label="port 9443") >> ssm >> hub
        hub >> Edge(color=GREY, label="Livy session") >> driver
        for executor in executors:
            driver >> Edge(color=ORANGE, style="bold", label="broadcast\nonce per executor") >> executor
            executor >> Edge(color=BLUE, dir="both", headport="w", label="read photos,\nwrite parquet") >> bucket
        instance_role >> Edge(color=GREY, style="dashed", label="instance profile") >> driver
    return out
