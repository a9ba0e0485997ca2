"""fruits_emr.aws: waiting on a step, AWS errors as one-line messages (against moto, helpers.aws)."""

from __future__ import annotations

import pytest

import fruits_emr as emr_mod

pytest_plugins = ["helpers.aws"]


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
