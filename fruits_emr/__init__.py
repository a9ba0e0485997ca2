"""The EMR launcher (an operator tool, installed on the laptop, never on the cluster nodes).

``python -m fruits_emr plan|up|submit|status|down`` runs the Fruits! pipeline on Amazon EMR, in the
EU only. Modules: :mod:`~fruits_emr.config` (guards, cluster request, pipeline step),
:mod:`~fruits_emr.cost` (hourly estimate), :mod:`~fruits_emr.aws` (boto3 calls), :mod:`~fruits_emr.cli`.
The data files it reads stay in ``emr/`` (cluster.json, prices.json, iam-policy.json, bootstrap.sh,
fruits_main.py).

Guards: EU regions only (GDPR), checked before any client exists; an idle auto-termination
policy in every request (cost); security-group ingress from 0.0.0.0/0 or ::/0 revoked (security).
Credentials come only from boto3's default chain: this package never reads, stores or prints them.
Kept import-light (no boto3 at import time, no pyspark/tensorflow) so ``plan`` runs anywhere.
"""

from fruits_emr.aws import *  # noqa: F401,F403
from fruits_emr.cli import main  # noqa: F401
from fruits_emr.config import *  # noqa: F401,F403
from fruits_emr.cost import *  # noqa: F401,F403
