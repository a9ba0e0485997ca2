"""The EMR launcher's test fixtures: one local moto server, boto3 clients recorded, fake credentials.

moto runs in server mode on 127.0.0.1 (one per test session); boto3 is pointed at it with
``FRUITS_AWS_ENDPOINT_URL`` and fake credentials set only here, through monkeypatch. Every request
the launcher sends is captured with botocore's ``before-send`` event, so the assertions are on what
was sent (moto cannot read back e.g. the auto-termination policy), including the region it was
signed for. Test modules load it with ``pytest_plugins = ["helpers.aws"]``.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import boto3
import pytest

import fruits_emr as emr_mod

REPO_ROOT = Path(emr_mod.__file__).resolve().parents[1]  # fruits_emr/__init__.py -> the checkout
REGION = "eu-west-3"


@pytest.fixture(scope="session")
def moto_url():
    """One moto server on a free port of 127.0.0.1 for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


class Recorder:
    """Every boto3 client created during a test, and every request those clients sent."""

    def __init__(self, original_client, endpoint_url: str):
        self._original = original_client
        self.endpoint_url = endpoint_url
        self.clients: list[tuple[str, str]] = []
        self.sent: list[dict] = []

    def raw(self, service: str, region: str = REGION):
        """A client for the test's own checks: neither recorded nor counted."""
        return self._original(
            boto3.session.Session(), service, region_name=region, endpoint_url=self.endpoint_url
        )

    def ops(self, service: str | None = None) -> list[str]:
        return [s["op"] for s in self.sent if service in (None, s["service"])]

    def one(self, op: str) -> dict:
        found = [s for s in self.sent if s["op"] == op]
        assert len(found) == 1, f"expected one {op}, sent: {self.ops()}"
        return found[0]


@pytest.fixture()
def aws(monkeypatch, moto_url, tmp_path):
    """Fake credentials and the moto endpoint in the environment; all boto3 clients recorded."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv(emr_mod.ENDPOINT_ENV, moto_url)

    original = boto3.session.Session.client
    rec = Recorder(original, moto_url)

    def recording_client(self, service_name, *args, **kwargs):
        client = original(self, service_name, *args, **kwargs)
        rec.clients.append((service_name, client.meta.region_name))

        def before_send(request, event_name, **_):
            auth = request.headers.get("Authorization", b"")
            auth = auth.decode() if isinstance(auth, bytes) else auth
            scope = re.search(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/", auth)
            body = request.body
            parsed = None
            if service_name in ("emr",) and body:
                parsed = json.loads(body.decode() if isinstance(body, bytes) else body)
            rec.sent.append(
                {
                    "service": service_name,
                    "op": event_name.split(".")[-1],
                    "url": request.url,
                    "signed_region": scope.group(1) if scope else None,
                    "body": parsed,
                }
            )

        client.meta.events.register("before-send", before_send)
        return client

    monkeypatch.setattr(boto3.session.Session, "client", recording_client)
    return rec


@pytest.fixture()
def dummy_wheel(tmp_path):
    """A file named like the wheel, for tests that do not need a real build."""
    path = tmp_path / "fruits_lib-0.1.0-py3-none-any.whl"
    path.write_bytes(b"placeholder wheel for upload tests")
    return path


def run_main(capsys, *argv: str) -> str:
    """Run the launcher in-process and return what it printed."""
    emr_mod.main(list(argv))
    return capsys.readouterr().out
