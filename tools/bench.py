"""What the detector costs, each figure measured in the same run as its baseline: ``python -m tools.bench``.

1. Cold start: importing the handler module in a fresh ``python3.13 -S`` process whose PYTHONPATH is only the
   built function, with the environment Lambda gives it under the template's defaults, against importing boto3
   and creating a Security Hub client from source (the same package without its bytecode) in the same kind of
   process. The time is taken inside the process, so interpreter start-up is left out. /var/task is read-only in
   Lambda, so the processes here may not write bytecode either: a module without shipped bytecode is compiled at
   every cold start. Also shown: the handler from source.
2. Warm CPU per invocation: the handler over the sample events against a handler that only sends the finding
   the detector would send, prebuilt, through boto3's default client; Security Hub answers locally, after botocore
   has validated, serialized and signed the call (tools/bench_lambda.py).
3. Memory: peak resident memory over many warm invocations against the baseline handler's, and how much the
   detector's grows after warm-up.
4. Size of the built package, unzipped and zipped, against boto3 with its dependencies alone.
5. Invocations the event rule's pattern, as written in template.yaml, triggers per 1,000 Lambda write events
   of a realistic mix, against the number the rule (rule.py) holds in scope; evaluated with moto's EventBridge
   matcher.

Repeated figures are interleaved (baseline and subject take turns) and reported as medians, because machines
are shared and noisy. Nothing here contacts AWS or the network: credentials are dummies and Security Hub is
answered locally.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import io
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import Distribution, distributions
from pathlib import Path
from types import ModuleType
from typing import Any

from tools import bench_backtest, local_runtime
from tools.cases import INVALID, PROJECT_ROOT, load_cases
from tools.cloudformation import EVENT_ID, FUNCTION_ID, TEMPLATE_PATH, Stack, load_template

DEFAULT_ARTIFACT = PROJECT_ROOT / ".aws-sam" / "build" / FUNCTION_ID
DETECTOR_SOURCES = PROJECT_ROOT / "functions" / "detector"
WORKER = Path(__file__).resolve().parent / "bench_lambda.py"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
SDK_DISTRIBUTIONS = ("boto3",)
"""The baseline package: boto3 and what it depends on, which any Python function that bundles the SDK ships."""
BASELINE_IMPORT = 'import boto3\nboto3.client("securityhub")'
IMPORT_PROBE = """\
import time
_wall, _cpu = time.perf_counter(), time.process_time()
{statements}
_wall, _cpu = time.perf_counter() - _wall, time.process_time() - _cpu
print("\\nimport-seconds", _wall, _cpu, flush=True)
"""
SUBPROCESS_TIMEOUT_SECONDS = 900
GROWTH_ALLOWANCE_KIB = 1024


@dataclass(frozen=True)
class BenchSettings:
    """How many times each figure is measured."""

    cold_start_runs: int = 15
    warm_invocations: int = 2_000
    warm_rounds: int = 40
    memory_invocations: int = 10_000
    memory_warmup: int = 1_000
    pattern_events: int = 1_000
    seed: int = 20261127
    backtest_records: int = 200_000
    backtest_repetitions: int = 5


FULL = BenchSettings()
QUICK = BenchSettings(
    cold_start_runs=2,
    warm_invocations=48,
    warm_rounds=2,
    memory_invocations=60,
    memory_warmup=24,
    pattern_events=200,
    backtest_records=5_000,
    backtest_repetitions=1,
)


# Figures and their comparison with a baseline ------------------------------------------------------------------


@dataclass(frozen=True)
class Paired:
    """Samples of a subject and its baseline taken in turns: ``subject[i]`` and ``baseline[i]`` belong together."""

    subject: tuple[float, ...]
    baseline: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.subject or len(self.subject) != len(self.baseline):
            raise ValueError("a comparison needs as many baseline samples as subject samples, at least one")

    @property
    def ratio(self) -> float:
        """Median of the paired ratios: robust against the machine getting faster or slower during the run."""
        return statistics.median(s / b for s, b in zip(self.subject, self.baseline, strict=True))

    @property
    def subject_median(self) -> float:
        return statistics.median(self.subject)

    @property
    def baseline_median(self) -> float:
        return statistics.median(self.baseline)

    def summary(self) -> str:
        """The ratio three ways; when they disagree much, the machine was too noisy to trust the figure."""
        of_medians = self.subject_median / self.baseline_median
        of_minima = min(self.subject) / min(self.baseline)
        return (
            f"ratio: median of paired {ratio_text(self.ratio)}, of medians {ratio_text(of_medians)},"
            f" of minima {ratio_text(of_minima)}"
        )


@dataclass(frozen=True)
class Row:
    measure: str
    subject: str
    baseline: str
    ratio: str
    target: str
    ok: str


def ok_text(passed: bool | None) -> str:
    return "info" if passed is None else "yes" if passed else "NO"


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


# The Lambda environment -------------------------------------------------------------------------------------


def detector_function() -> dict[str, Any]:
    """The detector's properties as CloudFormation would create them with the template's default parameters."""
    return Stack(load_template(TEMPLATE_PATH)).properties(FUNCTION_ID)


def lambda_environment(task_root: Path) -> dict[str, str]:
    """The environment Lambda gives the function under the template's defaults, as the demo and the end-to-end
    tests build it (tools/local_runtime.py), with only ``task_root`` on the path and no bytecode writing."""
    function = local_runtime.template_function(TEMPLATE_PATH)
    return local_runtime.lambda_environment(function, task_root, [task_root])


def handler_module(function: Mapping[str, Any]) -> str:
    return str(function["Handler"]).rsplit(".", 1)[0]


def function_arn(function: Mapping[str, Any]) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function.get('FunctionName', FUNCTION_ID)}"


# 1. Cold start ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportVariant:
    """One way of importing, in its own fresh process."""

    name: str
    statements: str
    environment: Mapping[str, str]
    task_root: Path


@dataclass(frozen=True)
class ImportTiming:
    wall_seconds: float
    cpu_seconds: float


class ImportFailedError(RuntimeError):
    """The import raised; the message is the last line of its traceback."""


def time_import(variant: ImportVariant) -> ImportTiming:
    """Import in a fresh ``python -S`` process, timed inside it (interpreter start-up excluded)."""
    completed = subprocess.run(
        [sys.executable, "-S", "-c", IMPORT_PROBE.format(statements=variant.statements)],
        env=dict(variant.environment),
        cwd=variant.task_root,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_SECONDS,
        check=False,
    )
    timings = [line.split() for line in completed.stdout.splitlines() if line.startswith("import-seconds ")]
    if completed.returncode != 0 or not timings:
        last_line = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise ImportFailedError(f"{variant.name}: {last_line}")
    _, wall, cpu = timings[-1]
    return ImportTiming(float(wall), float(cpu))


def time_imports_in_turns(variants: Sequence[ImportVariant], runs: int) -> dict[str, list[ImportTiming]]:
    """``runs`` rounds; each round imports every variant once, starting with a different one each round."""
    timings: dict[str, list[ImportTiming]] = {variant.name: [] for variant in variants}
    for round_number in range(runs):
        shift = round_number % len(variants)
        for variant in [*variants[shift:], *variants[:shift]]:
            timings[variant.name].append(time_import(variant))
    return timings


def source_only_copy(artifact: Path, destination: Path) -> Path:
    """A copy of the artifact without its bytecode, as a package that ships none."""
    shutil.copytree(artifact, destination, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return destination


@dataclass
class ColdStart:
    runs: int
    timings: dict[str, list[ImportTiming]]

    def wall(self, name: str) -> tuple[float, ...]:
        return tuple(timing.wall_seconds for timing in self.timings.get(name, []))

    def cpu(self, name: str) -> tuple[float, ...]:
        return tuple(timing.cpu_seconds for timing in self.timings.get(name, []))

    def compared(self, subject: str, baseline: str) -> Paired | None:
        if subject not in self.timings:
            return None
        return Paired(self.wall(subject), self.wall(baseline))


BASELINE = "boto3 + Security Hub client, from source"
DETECTOR = "detector, as built"
DETECTOR_FROM_SOURCE = "detector, from source"


def measure_cold_start(artifact: Path, function: Mapping[str, Any], runs: int, scratch: Path) -> ColdStart:
    """Import times of the handler module as built (with the bytecode it ships) and from source, and of the
    baseline from source: what any function bundling the SDK without bytecode pays at each cold start."""
    detector_import = f"import {handler_module(function)}"
    source = source_only_copy(artifact, scratch / "source")
    built_environment = lambda_environment(artifact)
    source_environment = lambda_environment(source)
    variants = [
        ImportVariant(BASELINE, BASELINE_IMPORT, source_environment, source),
        ImportVariant(DETECTOR, detector_import, built_environment, artifact),
        ImportVariant(DETECTOR_FROM_SOURCE, detector_import, source_environment, source),
    ]
    return ColdStart(runs, time_imports_in_turns(variants, runs))


# 2 and 3. Warm invocations, in a Lambda-like process (tools/bench_lambda.py) --------------------------------


def detector_module(name: str) -> ModuleType:
    """A module of the detector, imported from its sources (they import each other by top-level name)."""
    if str(DETECTOR_SOURCES) not in sys.path:
        sys.path.insert(0, str(DETECTOR_SOURCES))
    return importlib.import_module(name)


def sample_events() -> list[dict[str, Any]]:
    """The sample events the handler accepts, in the order of expected-verdicts.csv."""
    return [case.event for case in load_cases() if case.expected_verdict != INVALID]


def rule_settings(function: Mapping[str, Any]) -> Any:
    variables = function.get("Environment", {}).get("Variables", {})
    rule = detector_module("rule")
    return rule.RuleSettings.from_config(variables.get("ALLOWLIST_PATTERNS"), variables.get("EXTRA_ACTIONS"))


def prebuilt_findings(events: Sequence[Mapping[str, Any]], function: Mapping[str, Any]) -> list[dict[str, Any] | None]:
    """For each event, the finding the detector sends for it, or None when it sends none."""
    cloudtrail, rule, finding = (detector_module(name) for name in ("cloudtrail", "rule", "finding"))
    settings = rule_settings(function)
    detector = finding.DetectorAccount.from_function_arn(function_arn(function), REGION)
    findings: list[dict[str, Any] | None] = []
    for event in events:
        unwrapped = cloudtrail.unwrap(event)
        judged = rule.evaluate(unwrapped.record, settings)
        findings.append(finding.build_finding(unwrapped, judged, detector) if judged.kind == "finding" else None)
    return findings


def lambda_context(function: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "invoked_function_arn": function_arn(function),
        "function_name": str(function.get("FunctionName", FUNCTION_ID)),
        "memory_limit_in_mb": int(function.get("MemorySize", 128)),
    }


def run_in_lambda_process(mode: str, job: Mapping[str, Any], artifact: Path, function: Mapping[str, Any]) -> Any:
    """Run tools/bench_lambda.py in a fresh ``python -S`` process that sees only the artifact."""
    completed = subprocess.run(
        [sys.executable, "-S", "-P", str(WORKER), mode],
        input=json.dumps(job),
        env=lambda_environment(artifact),
        cwd=artifact,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_SECONDS,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout)


@dataclass(frozen=True)
class WarmCpu:
    invocations_each: int
    rounds: int
    mix_size: int
    per_invocation: Paired
    """CPU seconds per invocation, one sample per block."""
    security_hub_calls: Mapping[str, int]
    """Calls Security Hub answered during the measured blocks, by handler: the same for both."""


def measure_warm_cpu(artifact: Path, function: Mapping[str, Any], settings: BenchSettings) -> WarmCpu:
    events = sample_events()
    cycles_per_block = max(1, -(-settings.warm_invocations // (settings.warm_rounds * len(events))))
    block = cycles_per_block * len(events)
    job = {
        "events": events,
        "findings": prebuilt_findings(events, function),
        "context": lambda_context(function),
        "warmup": 2 * len(events),
        "rounds": settings.warm_rounds,
        "block": block,
    }
    figures = run_in_lambda_process("warm-cpu", job, artifact, function)
    per_invocation = figures["cpu_seconds_per_invocation"]
    paired = Paired(tuple(per_invocation["detector"]), tuple(per_invocation["baseline"]))
    return WarmCpu(
        block * settings.warm_rounds, settings.warm_rounds, len(events), paired, figures["security_hub_calls"]
    )


@dataclass(frozen=True)
class MemoryUse:
    rss_after_warmup_kib: int
    rss_end_kib: int
    peak_rss_kib: int
    security_hub_calls: int

    @property
    def growth_kib(self) -> int:
        return self.rss_end_kib - self.rss_after_warmup_kib


@dataclass(frozen=True)
class Memory:
    invocations: int
    warmup: int
    detector: MemoryUse
    baseline: MemoryUse

    @property
    def peak_ratio(self) -> float:
        return self.detector.peak_rss_kib / self.baseline.peak_rss_kib


def measure_memory(artifact: Path, function: Mapping[str, Any], settings: BenchSettings) -> Memory:
    events = sample_events()
    job = {
        "events": events,
        "findings": prebuilt_findings(events, function),
        "context": lambda_context(function),
        "warmup": settings.memory_warmup,
        "invocations": settings.memory_invocations,
    }
    baseline = MemoryUse(**run_in_lambda_process("memory-baseline", job, artifact, function))
    detector = MemoryUse(**run_in_lambda_process("memory-detector", job, artifact, function))
    return Memory(settings.memory_invocations, settings.memory_warmup, detector, baseline)


# 4. Package size --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackageSize:
    files: int
    bytes: int
    zipped_bytes: int


@dataclass(frozen=True)
class PackageSizes:
    detector: PackageSize
    sdk: PackageSize
    sdk_distributions: tuple[str, ...]


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def required_names(distribution: Distribution) -> list[str]:
    """Names of the distributions it requires, leaving out those only an extra asks for."""
    names = []
    for requirement in distribution.requires or []:
        specifier, _, marker = requirement.partition(";")
        if "extra" in marker:
            continue
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", specifier)
        if match:
            names.append(normalized(match.group(1)))
    return names


def distribution_closure(root: Path, top: Iterable[str]) -> list[Distribution]:
    """The distributions installed in ``root`` that ``top`` needs, ``top`` included."""
    installed = {normalized(dist.metadata["Name"]): dist for dist in distributions(path=[str(root)])}
    wanted, found = [normalized(name) for name in top], {}
    while wanted:
        name = wanted.pop()
        if name in found or name not in installed:
            continue
        found[name] = installed[name]
        wanted += required_names(installed[name])
    return [found[name] for name in sorted(found)]


def distribution_files(root: Path, members: Iterable[Distribution]) -> list[Path]:
    """The files these distributions installed in ``root`` (per their RECORD) that are there, with the bytecode
    compiled for their modules after installation (RECORD does not list it)."""
    files: set[Path] = set()
    for distribution in members:
        for recorded in distribution.files or []:
            path = Path(str(distribution.locate_file(recorded))).resolve()
            candidates = [path, Path(importlib.util.cache_from_source(str(path)))] if path.suffix == ".py" else [path]
            files.update(item for item in candidates if item.is_file() and item.is_relative_to(root.resolve()))
    return sorted(files)


def all_files(root: Path) -> list[Path]:
    return sorted(path.resolve() for path in root.rglob("*") if path.is_file())


def zipped_bytes(root: Path, files: Iterable[Path]) -> int:
    """Size of a deflated zip of the files, as ``sam package`` uploads it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(root.resolve()).as_posix())
    return buffer.getbuffer().nbytes


def package_size(root: Path, files: Sequence[Path]) -> PackageSize:
    return PackageSize(len(files), sum(path.stat().st_size for path in files), zipped_bytes(root, files))


def measure_package_size(artifact: Path) -> PackageSizes:
    sdk = distribution_closure(artifact, SDK_DISTRIBUTIONS)
    if not sdk:
        raise ValueError(f"{artifact} holds no {', '.join(SDK_DISTRIBUTIONS)} distribution")
    names = tuple(f"{dist.metadata['Name']} {dist.version}" for dist in sdk)
    return PackageSizes(
        package_size(artifact, all_files(artifact)), package_size(artifact, distribution_files(artifact, sdk)), names
    )


# 5. What the event pattern lets through ---------------------------------------------------------------------

# Lambda write calls per 1,000, as EventBridge receives them from CloudTrail (it gets no read-only Get*/List*
# calls unless the rule opts in to them, and no Invoke, a data event). A busy account deployed by CI/CD: mostly
# code and configuration updates with versions and aliases, a tenth of the calls tags, some layers, concurrency
# and function URLs. Each action with the API version CloudTrail appends to it.
LAMBDA_WRITE_MIX: tuple[tuple[str, str, int], ...] = (
    # The 13 actions the rule watches: 600 per 1,000.
    ("UpdateFunctionCode", "20150331v2", 180),
    ("UpdateFunctionConfiguration", "20150331v2", 100),
    ("PublishVersion", "20150331", 80),
    ("UpdateAlias", "20150331", 60),
    ("AddPermission", "20150331v2", 40),
    ("CreateFunction", "20150331", 30),
    ("CreateEventSourceMapping", "20150331", 25),
    ("UpdateEventSourceMapping", "20150331", 25),
    ("CreateAlias", "20150331", 20),
    ("RemovePermission", "20150331v2", 15),
    ("DeleteFunction", "20150331", 15),
    ("DeleteAlias", "20150331", 5),
    ("DeleteEventSourceMapping", "20150331", 5),
    # Other Lambda writes: 400 per 1,000, several named like a watched action.
    ("TagResource", "20170331v2", 100),
    ("PublishLayerVersion", "20181031", 60),
    ("PutFunctionConcurrency", "20171031", 40),
    ("PutFunctionEventInvokeConfig", "20190925", 30),
    ("PutProvisionedConcurrencyConfig", "20190930", 25),
    ("UntagResource", "20170331v2", 20),
    ("DeleteLayerVersion", "20181031", 20),
    ("DeleteFunctionConcurrency", "20171031", 15),
    ("CreateFunctionUrlConfig", "20211031", 15),
    ("AddLayerVersionPermission", "20181031", 10),
    ("DeleteProvisionedConcurrencyConfig", "20190930", 10),
    ("UpdateFunctionUrlConfig", "20211031", 10),
    ("PutFunctionCodeSigningConfig", "20200630", 10),
    ("RemoveLayerVersionPermission", "20181031", 5),
    ("UpdateFunctionEventInvokeConfig", "20190925", 5),
    ("DeleteFunctionEventInvokeConfig", "20190925", 5),
    ("DeleteFunctionUrlConfig", "20211031", 5),
    ("DeleteFunctionCodeSigningConfig", "20200630", 5),
    ("PutRuntimeManagementConfig", "20210720", 5),
    ("PutFunctionRecursionConfig", "20240831", 5),
)
UNVERSIONED_SHARE = 0.10
"""Share of records naming the action without its API version (as some records and the seed events do)."""
FAILED_SHARE = 0.03
"""Share of calls that were denied; they are recorded, and delivered, all the same."""


def _assumed_role(role: str, session: str) -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "arn": f"arn:aws:sts::111122223333:assumed-role/{role}/{session}",
        "accountId": "111122223333",
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::111122223333:role/{role}", "userName": role}
        },
    }


# Who makes the calls, per 1,000: mostly the deployment role.
CALLER_MIX: tuple[tuple[dict[str, Any], int], ...] = (
    (_assumed_role("DeployRole", "codebuild-payments-api"), 700),
    ({"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333"}, 100),
    (_assumed_role("AWSReservedSSO_AdministratorAccess_0123456789abcdef", "bob@example.com"), 80),
    ({"type": "AWSService", "invokedBy": "cloudformation.amazonaws.com"}, 70),
    (_assumed_role("DevSandboxRole", "xDeployRole"), 40),
    ({"type": "Root", "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333"}, 10),
)


def synthetic_lambda_events(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` EventBridge events of Lambda write calls in the proportions above, the same for a given seed."""
    chooser = random.Random(seed)
    actions = chooser.choices(LAMBDA_WRITE_MIX, weights=[weight for *_, weight in LAMBDA_WRITE_MIX], k=count)
    callers = chooser.choices(CALLER_MIX, weights=[weight for _, weight in CALLER_MIX], k=count)
    events = []
    for index, ((action, version, _), (identity, _)) in enumerate(zip(actions, callers, strict=True)):
        event_name = action if chooser.random() < UNVERSIONED_SHARE else action + version
        record: dict[str, Any] = {
            "eventVersion": "1.09",
            "userIdentity": identity,
            "eventTime": "2026-11-20T09:15:31Z",
            "eventSource": "lambda.amazonaws.com",
            "eventName": event_name,
            "awsRegion": "eu-west-1",
            "sourceIPAddress": "198.51.100.23",
            "requestParameters": {"functionName": f"function-{index % 40}"},
            "eventID": f"00000000-0000-4000-8000-{index:012d}",
            "readOnly": False,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": "111122223333",
            "eventCategory": "Management",
        }
        if chooser.random() < FAILED_SHARE:
            record["errorCode"] = "AccessDenied"
        events.append(
            {
                "version": "0",
                "id": f"5b8a3c1e-0000-4000-8000-{index:012d}",
                "detail-type": "AWS API Call via CloudTrail",
                "source": "aws.lambda",
                "account": "111122223333",
                "time": "2026-11-20T09:15:31Z",
                "region": "eu-west-1",
                "resources": [],
                "detail": record,
            }
        )
    return events


@dataclass(frozen=True)
class PatternCost:
    events: int
    matched: int
    in_scope: int
    wasted: int
    """Matched, but out of scope for the rule: invocations that only say 'ignored'."""
    missed: int
    """In scope for the rule, but not matched: changes the detector never sees."""
    allowlisted: int
    """In scope and matched, but allowlisted: necessary invocations that produce no finding."""

    def per_thousand(self, count: int) -> float:
        return 1000 * count / self.events

    @property
    def ratio(self) -> float:
        return self.matched / self.in_scope if self.in_scope else float("inf") if self.matched else 1.0


def event_rule_pattern(function: Mapping[str, Any]) -> dict[str, Any]:
    """The pattern of the detector's event rule, as CloudFormation creates it with the default parameters."""
    return function["Events"][EVENT_ID]["Properties"]["Pattern"]


def measure_pattern_cost(
    pattern: Mapping[str, Any], events: Sequence[Mapping[str, Any]], judge: Callable[[Mapping[str, Any]], str]
) -> PatternCost:
    """Count what the pattern delivers against what ``judge`` (the rule's verdict kind) holds in scope."""
    from moto.events.models import EventPattern

    matcher = EventPattern.load(json.dumps(pattern))
    matched = in_scope = wasted = missed = allowlisted = 0
    for event in events:
        delivered = matcher.matches_event(event)  # type: ignore[arg-type]  # moto types events as a TypedDict
        kind = judge(event["detail"])
        wanted = kind != "ignored"
        matched += delivered
        in_scope += wanted
        wasted += delivered and not wanted
        missed += wanted and not delivered
        allowlisted += delivered and kind == "allowlisted"
    return PatternCost(len(events), matched, in_scope, wasted, missed, allowlisted)


def rule_judge(function: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], str]:
    """The kind of verdict the rule gives a record, with the function's default settings."""
    rule, settings = detector_module("rule"), rule_settings(function)
    return lambda record: rule.evaluate(record, settings).kind


# The report -------------------------------------------------------------------------------------------------


@dataclass
class Report:
    settings: BenchSettings
    artifact: Path
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs"


def mib(kib_or_bytes: float, unit: int = 1024) -> str:
    return f"{kib_or_bytes / unit:.1f} MiB"


def ratio_text(ratio: float) -> str:
    return f"{ratio:.2f}"


def comparison_row(measure: str, paired: Paired, unit: Callable[[float], str], target: float | None = None) -> Row:
    """A row of medians and their paired ratio; with a target, whether the ratio is within it."""
    subject, baseline, ratio = unit(paired.subject_median), unit(paired.baseline_median), ratio_text(paired.ratio)
    if target is None:
        return Row(measure, subject, baseline, ratio, "—", ok_text(None))
    return Row(measure, subject, baseline, ratio, f"≤ {target:.2f}", ok_text(paired.ratio <= target))


def cold_start_rows(cold: ColdStart, target: float = 0.65) -> list[Row]:
    built = cold.compared(DETECTOR, BASELINE)
    source = cold.compared(DETECTOR_FROM_SOURCE, BASELINE)
    if built is None or source is None:
        raise ValueError("cold start lacks the detector or baseline figures")
    return [
        comparison_row("cold start: import handler module", built, ms, target),
        comparison_row("cold start: the same without bytecode", source, ms),
    ]


def cold_start_details(cold: ColdStart) -> list[str]:
    lines = [f"Cold start, {cold.runs} interleaved runs per variant (wall time inside the process; CPU time):"]
    for name in cold.timings:
        wall, cpu = cold.wall(name), cold.cpu(name)
        lines.append(
            f"  {name:<48} median {ms(median(wall)):>8}  min {ms(min(wall)):>8}  max {ms(max(wall)):>8}"
            f"  CPU median {ms(median(cpu)):>8}"
        )
    for subject in (DETECTOR, DETECTOR_FROM_SOURCE):
        paired_wall = cold.compared(subject, BASELINE)
        if paired_wall is not None:
            paired_cpu = Paired(cold.cpu(subject), cold.cpu(BASELINE))
            lines.append(
                f"  {subject}: wall {paired_wall.summary()}; CPU {paired_cpu.summary().removeprefix('ratio: ')}"
            )
    return lines


def warm_cpu_rows(warm: WarmCpu, target: float = 1.50) -> list[Row]:
    return [comparison_row("warm invocation: CPU per event", warm.per_invocation, us, target)]


def warm_cpu_details(warm: WarmCpu) -> list[str]:
    paired = warm.per_invocation
    calls = ", ".join(f"{name} {count:,}" for name, count in warm.security_hub_calls.items())
    return [
        f"Warm CPU, {warm.invocations_each:,} invocations each in {warm.rounds} alternating blocks over the"
        f" {warm.mix_size} accepted sample events (Security Hub calls answered: {calls}):",
        f"  {paired.summary()}",
        f"  detector per block: {', '.join(us(value) for value in paired.subject)}",
        f"  baseline per block: {', '.join(us(value) for value in paired.baseline)}",
    ]


def memory_rows(memory: Memory) -> list[Row]:
    growth = memory.detector.growth_kib
    return [
        Row(
            f"peak RSS over {memory.invocations:,} warm invocations",
            mib(memory.detector.peak_rss_kib),
            mib(memory.baseline.peak_rss_kib),
            ratio_text(memory.peak_ratio),
            "—",
            "info",
        ),
        Row(
            f"RSS growth, invocation {memory.warmup:,} → {memory.invocations:,}",
            f"{growth:+,} KiB",
            f"{memory.baseline.growth_kib:+,} KiB",
            "",
            f"none (< {GROWTH_ALLOWANCE_KIB:,} KiB)",
            ok_text(growth < GROWTH_ALLOWANCE_KIB),
        ),
    ]


def memory_details(memory: Memory) -> list[str]:
    def line(name: str, use: MemoryUse) -> str:
        return (
            f"  {name:<9} after warm-up {use.rss_after_warmup_kib:>8,} KiB   at the end {use.rss_end_kib:>8,} KiB"
            f"   peak {use.peak_rss_kib:>8,} KiB   Security Hub calls {use.security_hub_calls:,}"
        )

    return [
        "Memory (resident set, one process each):",
        line("detector", memory.detector),
        line("baseline", memory.baseline),
    ]


def package_rows(sizes: PackageSizes) -> list[Row]:
    def row(measure: str, size: Callable[[PackageSize], int]) -> Row:
        detector, sdk = size(sizes.detector), size(sizes.sdk)
        return Row(measure, mib(detector, 1024 * 1024), mib(sdk, 1024 * 1024), ratio_text(detector / sdk), "—", "info")

    return [
        row("package size, unzipped", lambda package: package.bytes),
        row("package size, zipped (deflate)", lambda package: package.zipped_bytes),
    ]


def package_details(sizes: PackageSizes) -> list[str]:
    extra = sizes.detector.bytes - sizes.sdk.bytes
    return [
        f"Package: {sizes.detector.files:,} files, {sizes.detector.bytes:,} bytes"
        f" ({sizes.detector.zipped_bytes:,} zipped);"
        f" baseline {sizes.sdk.files:,} files of {', '.join(sizes.sdk_distributions)},"
        f" {sizes.sdk.bytes:,} bytes ({sizes.sdk.zipped_bytes:,} zipped); the detector adds {extra:,} bytes."
    ]


def pattern_rows(cost: PatternCost) -> list[Row]:
    return [
        Row(
            "invocations per 1,000 Lambda write events",
            f"{cost.per_thousand(cost.matched):.1f}",
            f"{cost.per_thousand(cost.in_scope):.1f} in scope",
            ratio_text(cost.ratio),
            "1.00",
            ok_text(cost.matched == cost.in_scope and cost.wasted == 0 and cost.missed == 0),
        ),
        Row(
            "  wasted (matched, out of scope) per 1,000",
            f"{cost.per_thousand(cost.wasted):.1f}",
            "",
            "",
            "0",
            ok_text(cost.wasted == 0),
        ),
        Row(
            "  missed (in scope, not matched) per 1,000",
            f"{cost.per_thousand(cost.missed):.1f}",
            "",
            "",
            "0 (must)",
            ok_text(cost.missed == 0),
        ),
    ]


def pattern_details(cost: PatternCost, seed: int) -> list[str]:
    watched = sum(weight for *_, weight in LAMBDA_WRITE_MIX[:13])
    return [
        f"Pattern: {cost.events:,} synthetic Lambda write events (seed {seed}; {watched} per 1,000 of the 13 watched"
        f" actions, {int(UNVERSIONED_SHARE * 100)}% without API version, {int(FAILED_SHARE * 100)}% denied),"
        f" pattern from template.yaml with default parameters, matched by moto's EventBridge matcher.",
        f"  matched {cost.matched}, in scope {cost.in_scope}, of which allowlisted {cost.allowlisted}"
        f" (invocations that produce no finding: the allowlist depends on the caller's identity, which the rule"
        f" works out in code).",
    ]


def backtest_row(speed: bench_backtest.BacktestSpeed, target: float = 1.00) -> Row:
    """Backtest on local gzip files against gzip + json.loads of the same files; its counts must be exact too."""
    row = comparison_row(
        f"backtest, {speed.records:,}-record gzip trail (wall)", Paired(speed.subject, speed.baseline), ms, target
    )
    return row if speed.counts_match else Row(row.measure, row.subject, row.baseline, row.ratio, row.target, "NO")


def render_table(rows: Sequence[Row]) -> str:
    header = Row("measure", "subject", "baseline", "ratio", "target", "ok?")
    columns = list(zip(*[(r.measure, r.subject, r.baseline, r.ratio, r.target, r.ok) for r in [header, *rows]]))
    widths = [max(len(cell) for cell in column) for column in columns]
    numeric = {1, 2, 3}

    def line(row: Row) -> str:
        cells = (row.measure, row.subject, row.baseline, row.ratio, row.target, row.ok)
        return " | ".join(
            cell.rjust(width) if index in numeric and row is not header else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "-+-".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def machine_description() -> str:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"Python {platform.python_version()} ({platform.python_implementation()}), {platform.machine()},"
        f" {os.cpu_count()} CPUs, load average {load}, {platform.platform()}"
    )


def repetitions(settings: BenchSettings) -> str:
    return (
        f"cold start {settings.cold_start_runs} runs per variant; warm CPU {settings.warm_invocations:,}+ invocations"
        f" each in {settings.warm_rounds} blocks; memory {settings.memory_invocations:,} invocations"
        f" ({settings.memory_warmup:,} warm-up); pattern {settings.pattern_events:,} events"
    )


def render_report(report: Report) -> str:
    timing = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in report.seconds.items())
    return "\n".join(
        [
            f"lambda-crud-detector benchmarks — {machine_description()}",
            f"artifact: {report.artifact}",
            f"repetitions: {repetitions(report.settings)}",
            "baselines: cold start = import boto3 + boto3.client('securityhub'); warm = the same finding sent through"
            " boto3's default client; size = boto3 and its dependencies",
            "",
            render_table(report.rows),
            "",
            *report.details,
            "",
            f"took {timing}",
        ]
    )


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def run_benchmarks(artifact: Path, settings: BenchSettings) -> Report:
    function = detector_function()
    report = Report(settings, artifact)

    def timed(name: str, measure: Callable[[], Any]) -> Any:
        progress(f"{name}…")
        started = time.monotonic()
        result = measure()
        report.seconds[name] = time.monotonic() - started
        return result

    with tempfile.TemporaryDirectory(prefix="detector-bench-") as scratch:
        runs, scratch_dir = settings.cold_start_runs, Path(scratch)
        cold = timed("cold start", lambda: measure_cold_start(artifact, function, runs, scratch_dir))
    warm = timed("warm CPU", lambda: measure_warm_cpu(artifact, function, settings))
    memory = timed("memory", lambda: measure_memory(artifact, function, settings))
    sizes = timed("package size", lambda: measure_package_size(artifact))
    events = synthetic_lambda_events(settings.pattern_events, settings.seed)
    cost = timed("pattern", lambda: measure_pattern_cost(event_rule_pattern(function), events, rule_judge(function)))
    backtest = timed(
        "backtest", lambda: bench_backtest.measure(settings.backtest_records, settings.backtest_repetitions)
    )

    report.rows = [
        *cold_start_rows(cold),
        *warm_cpu_rows(warm),
        *memory_rows(memory),
        *package_rows(sizes),
        *pattern_rows(cost),
        backtest_row(backtest),
    ]
    report.details = [
        *cold_start_details(cold),
        *warm_cpu_details(warm),
        *memory_details(memory),
        *package_details(sizes),
        *pattern_details(cost, settings.seed),
        *bench_backtest.details(backtest),
    ]
    return report


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", type=Path, default=DEFAULT_ARTIFACT, help="the built function (sam build)")
    parser.add_argument("--quick", action="store_true", help="a few repetitions only: checks that it runs")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    artifact = arguments.artifact.resolve()
    if not (artifact / "app.py").is_file():
        print(f"{artifact} holds no built function: run `make build` first.", file=sys.stderr)
        return 2
    report = run_benchmarks(artifact, QUICK if arguments.quick else FULL)
    print(render_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
