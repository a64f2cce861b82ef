"""Run a Makefile target as a user runs it from a shell: nothing from the test run's own environment that a user's
shell would not have (no placeholder credentials, no make of an enclosing ``make test``)."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence

from tests.support.cases import PROJECT_ROOT

_NOT_FROM_A_USERS_SHELL = ("AWS_", "MAKE", "MFLAGS", "PYTEST_", "SAM_CLI_")


def user_environment(variables: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any AWS setting or enclosing make's, plus ``variables``."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith(_NOT_FROM_A_USERS_SHELL)}
    environment.update(variables)
    return environment


def run_make(
    target: str, arguments: Sequence[str], variables: Mapping[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``make TARGET ARGS="..."`` in the project, with ``variables`` as the only AWS settings."""
    command = ["make", "--no-print-directory", target]
    if arguments:
        command.append("ARGS=" + shlex.join(arguments))
    return subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        env=user_environment(variables),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
