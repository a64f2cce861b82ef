"""The size of the built function against the SDK it bundles, for ``bench.run``: every file of the package, and
the files of boto3 and the distributions it requires (per their RECORD, with the bytecode compiled for them),
each unzipped and as a deflated zip, as ``sam package`` uploads it.
"""

from __future__ import annotations

import importlib.util
import io
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import Distribution, distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

SDK_DISTRIBUTIONS = ("boto3",)
"""The baseline package: boto3 and what it depends on, which any Python function that bundles the SDK ships."""


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


def distribution_closure(root: Path, top: Iterable[str]) -> list[Distribution]:
    """The distributions installed in ``root`` that ``top`` needs, ``top`` included; requirements whose markers
    this interpreter does not meet (those of extras, of other Pythons) left out."""
    installed = {canonicalize_name(dist.metadata["Name"]): dist for dist in distributions(path=[str(root)])}
    wanted, found = [canonicalize_name(name) for name in top], {}
    while wanted:
        name = wanted.pop()
        if name in found or name not in installed:
            continue
        found[name] = installed[name]
        requirements = [Requirement(text) for text in installed[name].requires or []]
        wanted += [canonicalize_name(r.name) for r in requirements if not r.marker or r.marker.evaluate({"extra": ""})]
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


def package_size(root: Path, files: Sequence[Path]) -> PackageSize:
    """How many files, their bytes, and the size of a deflated zip of them, as ``sam package`` uploads it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(root.resolve()).as_posix())
    return PackageSize(len(files), sum(path.stat().st_size for path in files), buffer.getbuffer().nbytes)


def measure_package_size(artifact: Path) -> PackageSizes:
    sdk = distribution_closure(artifact, SDK_DISTRIBUTIONS)
    if not sdk:
        raise ValueError(f"{artifact} holds no {', '.join(SDK_DISTRIBUTIONS)} distribution")
    everything = sorted(path.resolve() for path in artifact.rglob("*") if path.is_file())
    return PackageSizes(
        package_size(artifact, everything),
        package_size(artifact, distribution_files(artifact, sdk)),
        tuple(f"{dist.metadata['Name']} {dist.version}" for dist in sdk),
    )
