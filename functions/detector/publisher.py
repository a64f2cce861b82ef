"""Send findings to Security Hub and make every rejection loud.

``BatchImportFindings`` answers HTTP 200 even when it rejects findings, listing them in ``FailedFindings``;
a producer that only checks for exceptions loses those findings silently. Here any rejection raises, so Lambda
retries the event and, when retries run out, its failure destination keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

# boto3 and botocore are imported where a client is created, never at import: most events are allowlisted or
# ignored and need no client, and importing the SDK costs more than the rest of a cold start.
if TYPE_CHECKING:
    from botocore.config import Config

# Throttling (10 calls/s, burst 30, per account and Region), 5xx answers and dropped connections are retried
# by botocore itself with exponential backoff and jitter. "standard" rather than "adaptive": the function's
# reserved concurrency already bounds the call rate, and adaptive's client-side rate limiter costs CPU on
# every call. The number of attempts is bounded so that an outage turns into a Lambda retry, not a timeout.
MAX_ATTEMPTS = 6
CONNECT_TIMEOUT_SECONDS = 3
READ_TIMEOUT_SECONDS = 10

EMULATOR_ACCOUNT_ID = "012345678912"
"""The account of the function ARN that the Lambda Runtime Interface Emulator hands every invocation, under
``sam local invoke`` (which runs it in the function's container) as under ``make demo``."""
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_SECURITYHUB", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL")
"""The variables that would point botocore at another Security Hub (or STS) endpoint: what a change to the
function's configuration can set. (A config file's ``endpoint_url`` is ignored as well, but needs a file on disk.)"""
INTERCEPTION_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "AWS_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
)
"""Variables that route the real endpoint's traffic through another host (a proxy), or make the clients trust
another certificate authority: with either, whoever set them can read and drop every finding while the endpoint
looks real. The function is not in a VPC and needs neither."""

_log = Logger(child=True)


def runs_locally(invoked_function_arn: str, environ: Mapping[str, str]) -> bool:
    """Whether the function runs under ``sam local`` or the emulator, rather than in Lambda.

    AWS_SAM_LOCAL alone would not do: it is an ordinary variable, which anyone allowed to change the deployed
    function's configuration can set. The account in the invoked function's ARN comes from Lambda itself, and on a
    deployed function it is the account the function lives in, never the emulator's.
    """
    arn_parts = invoked_function_arn.split(":")
    return environ.get("AWS_SAM_LOCAL") == "true" and len(arn_parts) > 4 and arn_parts[4] == EMULATOR_ACCOUNT_ID


def client_config(local: bool, max_attempts: int = MAX_ATTEMPTS) -> Config:
    """The clients' configuration, ``max_attempts`` attempts per call: unless ``local``, every configured endpoint is
    ignored and the real one used.

    An endpoint is configuration: honoured in a deployed function, it would let whoever may change that
    configuration send every later finding (or the findings role's credentials) to a host that accepts and drops
    them.
    """
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
    )
    if local:
        return config
    # botocore has the option since 1.31.7; its type stubs do not list it yet.
    return config.merge(Config(ignore_configured_endpoint_urls=True))  # type: ignore[call-arg]


def aws_client(service: str, local: bool, max_attempts: int = MAX_ATTEMPTS, **credentials: str) -> Any:
    """A client of ``service`` configured by ``client_config``, signing with ``credentials`` when given
    (``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token``), else with the function's own."""
    import boto3

    create_client: Callable[..., Any] = boto3.client  # its type stubs know each service by a literal name only
    return create_client(service, config=client_config(local, max_attempts), **credentials)


def security_hub_client(local: bool, max_attempts: int = MAX_ATTEMPTS, **credentials: str) -> Any:
    """A Security Hub client (see ``aws_client``)."""
    return aws_client("securityhub", local, max_attempts, **credentials)


def endpoint_variables(environ: Mapping[str, str]) -> list[str]:
    """The names of the endpoint variables that are set (an empty value is as good as unset)."""
    return [name for name in ENDPOINT_VARIABLES if environ.get(name)]


def interception_variables(environ: Mapping[str, str]) -> list[str]:
    """The names of the interception variables that are set (an empty value is as good as unset)."""
    return [name for name in INTERCEPTION_VARIABLES if environ.get(name)]


class PublishError(RuntimeError):
    """Security Hub did not store every finding it was sent."""

    def __init__(self, failed: Sequence[dict[str, Any]]) -> None:
        self.failed = list(failed)
        summary = ", ".join(f"{item.get('Id')} ({item.get('ErrorCode')})" for item in self.failed[:5])
        super().__init__(f"Security Hub rejected {len(self.failed)} finding(s): {summary}")


class FindingPublisher:
    """Imports findings through one Security Hub client, raising unless every finding was accepted."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def publish(self, findings: Sequence[dict[str, Any]]) -> None:
        if not findings:
            return
        response = self._client.batch_import_findings(Findings=list(findings))
        failed = response.get("FailedFindings") or []
        if response.get("FailedCount", 0) > 0 or failed:
            for item in failed:
                _log.error(
                    f"Security Hub rejected finding {item.get('Id')}: {item.get('ErrorCode')}",
                    findingId=item.get("Id"),
                    errorCode=item.get("ErrorCode"),
                    errorMessage=item.get("ErrorMessage"),
                )
            raise PublishError(failed or [{"Id": None, "ErrorCode": f"FailedCount={response.get('FailedCount')}"}])


# Assumed-role credentials are replaced this long before they expire, so that no call is signed with credentials
# about to lapse (an hour's session is renewed after 50 minutes).
CREDENTIALS_REFRESH_MARGIN = timedelta(minutes=10)
ROLE_SESSION_NAME = "lambda-crud-detector"
"""Names the detector's sessions in the other account's CloudTrail."""


class FindingsRoleError(RuntimeError):
    """The role that imports findings into another account could not be assumed; nothing was imported."""

    def __init__(self, role_arn: str, cause: Exception) -> None:
        self.role_arn = role_arn
        super().__init__(f"Could not assume {role_arn} to import the finding there: {cause}")


class AssumedRolePublishers:
    """A FindingPublisher per role in another account, acting with that role's temporary credentials.

    Each publisher is kept across warm invocations and replaced, with fresh credentials, once its credentials are
    within CREDENTIALS_REFRESH_MARGIN of expiring. A role that cannot be assumed raises FindingsRoleError: the
    finding is never sent anywhere else instead.
    """

    def __init__(
        self,
        assume_role: Callable[..., Mapping[str, Any]],
        create_client: Callable[..., Any],
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        """``assume_role`` is an STS client's ``assume_role``; ``create_client`` makes a Security Hub client from
        ``aws_access_key_id``, ``aws_secret_access_key`` and ``aws_session_token``."""
        self._assume_role = assume_role
        self._create_client = create_client
        self._now = now
        self._publishers: dict[str, tuple[FindingPublisher, datetime]] = {}

    def publisher_for(self, role_arn: str) -> FindingPublisher:
        from botocore.exceptions import BotoCoreError, ClientError

        cached = self._publishers.get(role_arn)
        if cached is not None and self._now() < cached[1] - CREDENTIALS_REFRESH_MARGIN:
            return cached[0]
        try:
            credentials = self._assume_role(RoleArn=role_arn, RoleSessionName=ROLE_SESSION_NAME)["Credentials"]
        except (BotoCoreError, ClientError) as error:
            raise FindingsRoleError(role_arn, error) from error
        client = self._create_client(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
        publisher = FindingPublisher(client)
        self._publishers[role_arn] = (publisher, credentials["Expiration"])
        return publisher
