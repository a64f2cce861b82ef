"""Run ``sam local invoke``, print the function's answer, and fail when the function failed.

    python -m tests.support.checked_invoke sam local invoke DetectorFunction --event events/<file>.json ...

``sam local invoke`` exits 0 when the function raised (its answer is then Lambda's error object, with
``errorType`` and ``errorMessage``) and when it timed out or its container never answered (it then prints no
answer at all, only log lines). This runs the command it is given, lets the log lines through on stderr, prints
the answer on stdout, and exits 0 only when there is an answer that is not an error; otherwise it says why and
exits non-zero (the command's own status when that is not 0).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

from tests.support.local_runtime import Invocation

NO_ANSWER = (
    "the function gave no answer: it timed out, or its container could not run it (an image of another "
    "architecture than this machine's, without emulation, ends the same way)"
)


def failure_of(answer: str) -> str | None:
    """Why ``answer`` (what ``sam local invoke`` printed on stdout) is not a successful invocation; None if it is."""
    if not answer.strip():
        return NO_ANSWER
    try:
        payload = json.loads(answer)
    except json.JSONDecodeError:
        return f"the function's answer is not JSON: {answer[:200]!r}"
    error = Invocation(payload, logs=()).error
    return None if error is None else f"the function failed with {error}"


def main(command: Sequence[str]) -> int:
    if not command:
        print("usage: python -m tests.support.checked_invoke sam local invoke ...", file=sys.stderr)
        return 2
    try:
        completed = subprocess.run(list(command), stdout=subprocess.PIPE, text=True, check=False)
    except KeyboardInterrupt:  # Ctrl-C reached the command too; it stops its container itself
        return 130
    if completed.stdout:
        print(completed.stdout.rstrip("\n"), flush=True)
    if completed.returncode != 0:
        print(f"{command[0]} exited with status {completed.returncode}", file=sys.stderr)
        return completed.returncode
    failure = failure_of(completed.stdout)
    if failure is not None:
        print(f"Invocation failed: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
