"""``lambda-crud-detector``: one command, with a subcommand for each thing a team does against its own account.

Each subcommand is a module of this package with its own ``main(argv) -> int`` and its own ``--help``; this module
only picks it, and imports it only then, so that ``--help`` answers at once and a subcommand loads only what it
uses (findings and redrive need boto3, backtest needs msgspec and the detector's modules).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata

PROG = "lambda-crud-detector"

EXIT_OK = 0
EXIT_ATTENTION = 1
EXIT_CANNOT_RUN = 2
EXIT_INTERRUPTED = 130

EXIT_STATUS = f"""\
exit status (every subcommand):
  {EXIT_OK}    done, and nothing needs attention
  {EXIT_ATTENTION}    done, but something needs attention: backtest could not judge some files, objects or
       records (each is named); redrive kept some messages (each is named, with the reason)
  {EXIT_CANNOT_RUN}    could not run: a usage error, no credentials or Region, an AWS error, a path that does not exist
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)"""


@dataclass(frozen=True)
class Subcommand:
    module: str
    summary: str


SUBCOMMANDS = {
    "backtest": Subcommand(
        "lambda_crud_detector.backtest",
        "judge stored CloudTrail history (LookupEvents, S3, local files, Athena) with the rule, before deploying",
    ),
    "findings": Subcommand("lambda_crud_detector.findings", "list the findings the detector wrote to Security Hub"),
    "redrive": Subcommand("lambda_crud_detector.redrive", "send the events the deployed detector failed on back to it"),
    "securityhub-check": Subcommand(
        "lambda_crud_detector.securityhub_check",
        "import one labelled test finding, look for it with GetFindings and GetFindingsV2, then archive it",
    ),
}


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Reports every change to an AWS Lambda function not made by your deployment role as a Security Hub\n"
            "finding. These commands run against your own account, with your AWS credential chain and Region\n"
            "(environment, AWS_PROFILE, SSO). `lambda-crud-detector COMMAND --help` describes each command."
        ),
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command", required=True)
    for name, subcommand in SUBCOMMANDS.items():
        commands.add_parser(name, help=subcommand.summary, add_help=False)
    return parser


def version() -> str:
    try:
        return metadata.version(PROG)
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def subcommand_main(name: str) -> Callable[[Sequence[str]], int]:
    module = importlib.import_module(SUBCOMMANDS[name].module)
    entry: Callable[[Sequence[str]], int] = module.main
    return entry


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] not in SUBCOMMANDS:
        # No subcommand: --help, --version, or a usage error, all of which argparse reports and exits for.
        argument_parser().parse_args(arguments)
        return EXIT_CANNOT_RUN  # not reached: parse_args exits when no known subcommand was given
    try:
        return subcommand_main(arguments[0])(arguments[1:])
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
