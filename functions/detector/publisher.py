"""Send findings to Security Hub and make every rejection loud.

``BatchImportFindings`` answers HTTP 200 even when it rejects findings, listing them in ``FailedFindings``;
a producer that only checks for exceptions loses those findings silently. Here any rejection raises, so Lambda
retries the event and, when retries run out, its failure destination keeps it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_lambda_powertools import Logger
from botocore.config import Config

# Throttling (10 calls/s, burst 30, per account and Region), 5xx answers and dropped connections are retried
# by botocore itself with exponential backoff and jitter. "standard" rather than "adaptive": the function's
# reserved concurrency already bounds the call rate, and adaptive's client-side rate limiter costs CPU on
# every call. The number of attempts is bounded so that an outage turns into a Lambda retry, not a timeout.
SECURITY_HUB_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 6},
    connect_timeout=3,
    read_timeout=10,
)

_log = Logger(child=True)


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
