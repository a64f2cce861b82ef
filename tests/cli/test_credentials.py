"""Commands that talk to a real account sign with the caller's own credentials: `make findings`, run as a user runs
it, against a local HTTP server that records how each request was signed."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.user_commands import run_make

PROFILE = "detector-auditor"
PROFILE_KEY = "AKIAPROFILEKEY000001"
PROFILE_REGION = "eu-west-3"
ENVIRONMENT_KEY = "AKIAENVIRONMENTKEY01"
# SigV4: Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request, ...
CREDENTIAL = re.compile(r"Credential=(?P<key>[^/]+)/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")


CALLER_IDENTITY = (
    '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>'
    "<Arn>arn:aws:iam::111122223333:user/analyst</Arn><UserId>AIDAEXAMPLE</UserId><Account>111122223333</Account>"
    "</GetCallerIdentityResult></GetCallerIdentityResponse>"
)


class RecordingSecurityHub(ThreadingHTTPServer):
    """Answers STS's GetCallerIdentity, and every other request as an empty Security Hub page; keeps each request's
    Authorization header."""

    def __init__(self) -> None:
        self.authorizations: list[str] = []
        super().__init__(("127.0.0.1", 0), _RecordingHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _RecordingHandler(BaseHTTPRequestHandler):
    server: RecordingSecurityHub

    def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
        request = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.authorizations.append(self.headers.get("Authorization", ""))
        if b"Action=GetCallerIdentity" in request:  # STS's query protocol answers in XML
            body, content_type = CALLER_IDENTITY.encode(), "text/xml"
        else:
            body, content_type = json.dumps({"Findings": [], "FailedCount": 0}).encode(), "application/json"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's signature)
        pass


@pytest.fixture
def security_hub() -> Iterator[RecordingSecurityHub]:
    server = RecordingSecurityHub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def profile_files(tmp_path: Path) -> dict[str, str]:
    """A shared credentials file and a config file holding one named profile, as `aws configure` writes them."""
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[{PROFILE}]\naws_access_key_id = {PROFILE_KEY}\naws_secret_access_key = profile-secret\n", encoding="utf-8"
    )
    config = tmp_path / "config"
    config.write_text(f"[profile {PROFILE}]\nregion = {PROFILE_REGION}\n", encoding="utf-8")
    return {"AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_CONFIG_FILE": str(config)}


def signatures(server: RecordingSecurityHub) -> list[dict[str, str]]:
    found = [CREDENTIAL.search(header) for header in server.authorizations]
    assert server.authorizations and all(found), server.authorizations
    return [match.groupdict() for match in found if match]


def test_make_findings_signs_with_the_named_profile(
    security_hub: RecordingSecurityHub, profile_files: dict[str, str]
) -> None:
    completed = run_make("findings", ["--endpoint-url", security_hub.url], {**profile_files, "AWS_PROFILE": PROFILE})
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "No findings." in completed.stdout
    # The profile's key and its Region: nothing the Makefile sets comes before the caller's configuration.
    assert signatures(security_hub) == [{"key": PROFILE_KEY, "region": PROFILE_REGION, "service": "securityhub"}]


def test_make_findings_signs_with_credentials_from_the_environment(
    security_hub: RecordingSecurityHub, profile_files: dict[str, str]
) -> None:
    environment = {
        **profile_files,
        "AWS_ACCESS_KEY_ID": ENVIRONMENT_KEY,
        "AWS_SECRET_ACCESS_KEY": "environment-secret",
        "AWS_DEFAULT_REGION": "ap-southeast-2",
    }
    completed = run_make("findings", ["--endpoint-url", security_hub.url], environment)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert signatures(security_hub) == [{"key": ENVIRONMENT_KEY, "region": "ap-southeast-2", "service": "securityhub"}]


def test_make_findings_without_credentials_says_how_to_get_some(
    security_hub: RecordingSecurityHub, profile_files: dict[str, str]
) -> None:
    # No profile, no key: it must neither fall back to a placeholder key nor send anything.
    completed = run_make(
        "findings",
        ["--endpoint-url", security_hub.url, "--region", "us-east-1"],
        {**profile_files, "AWS_EC2_METADATA_DISABLED": "true"},
    )
    assert completed.returncode != 0
    assert "no AWS credentials found" in completed.stderr
    assert security_hub.authorizations == []


def test_make_securityhub_check_signs_every_call_with_the_named_profile_and_stays_on_the_endpoint(
    security_hub: RecordingSecurityHub, profile_files: dict[str, str]
) -> None:
    completed = run_make(
        "securityhub-check",
        ["--endpoint-url", security_hub.url, "--wait", "0"],
        {**profile_files, "AWS_PROFILE": PROFILE},
    )
    # The recording endpoint never shows the test finding: the check runs to its end, says so, and fails.
    assert "imported (BatchImportFindings): yes" in completed.stdout, completed.stdout + completed.stderr
    assert "archived (RecordState ARCHIVED): yes" in completed.stdout
    assert completed.returncode != 0
    # STS and Security Hub alike: the profile's key and Region, and no call left for AWS's own endpoints.
    services = {signature["service"] for signature in signatures(security_hub)}
    assert services == {"sts", "securityhub"}
    assert {(s["key"], s["region"]) for s in signatures(security_hub)} == {(PROFILE_KEY, PROFILE_REGION)}


def test_make_backtest_reads_lookup_events_with_the_named_profile(
    security_hub: RecordingSecurityHub, profile_files: dict[str, str]
) -> None:
    # The recording endpoint stands in for CloudTrail: an empty page of events, so the history read is empty.
    environment = {**profile_files, "AWS_PROFILE": PROFILE, "AWS_ENDPOINT_URL_CLOUDTRAIL": security_hub.url}
    completed = run_make("backtest", ["--lookup-events", "--since", "1d", "--no-progress"], environment)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    found = signatures(security_hub)
    assert {signature["service"] for signature in found} == {"cloudtrail"}
    assert {(s["key"], s["region"]) for s in found} == {(PROFILE_KEY, PROFILE_REGION)}
