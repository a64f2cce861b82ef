"""One version, in pyproject.toml and in the metadata `sam publish` reads, and everything that metadata points to."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from samcli.vendor.serverlessrepo.application_metadata import ApplicationMetadata
from samcli.vendor.serverlessrepo.parser import get_app_metadata, parse_template

from tests.support.cloudformation import PROJECT_ROOT, TEMPLATE_PATH

SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")


def project_version() -> str:
    return str(tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"])


# `sam publish` does not publish a nested application given by a local path: each nested template is published
# first as an application of its own (docs/deploy.md), so each carries the same metadata, at the same version.
PUBLISHED_TEMPLATES = [TEMPLATE_PATH, *sorted((PROJECT_ROOT / "stacks").glob("*.yaml"))]
every_published_template = pytest.mark.parametrize(
    "template_path", PUBLISHED_TEMPLATES, ids=lambda path: str(path.relative_to(PROJECT_ROOT))
)


def publish_metadata(template_path: Path = TEMPLATE_PATH) -> ApplicationMetadata:
    """The metadata as `sam publish` parses it, with the SAM CLI's own parser."""
    template = parse_template(template_path.read_text(encoding="utf-8"))
    return get_app_metadata(template)


@every_published_template
def test_the_template_and_pyproject_carry_the_same_semantic_version(template_path: Path) -> None:
    assert SEMVER.fullmatch(project_version())
    assert publish_metadata(template_path).semantic_version == project_version()


def test_each_application_has_a_name_of_its_own() -> None:
    names = [publish_metadata(path).name for path in PUBLISHED_TEMPLATES]
    assert len(set(names)) == len(names) and all(name.startswith("lambda-crud-detector") for name in names)


@every_published_template
def test_sam_publish_finds_what_it_requires(template_path: Path) -> None:
    metadata = publish_metadata(template_path)
    # The checks `sam publish` makes before creating an application, and before publishing a version.
    metadata.validate(["author", "description", "name"])
    metadata.validate(["semantic_version"])
    assert metadata.spdx_license_id == "Apache-2.0"


@every_published_template
def test_metadata_values_are_plain_text_not_intrinsic_functions(template_path: Path) -> None:
    def plain(value: Any) -> bool:
        if isinstance(value, list):
            return all(plain(item) for item in value)
        return isinstance(value, str)

    values = publish_metadata(template_path).template_dict
    assert all(plain(value) for value in values.values()), values


@every_published_template
def test_license_and_readme_exist_and_the_license_is_the_one_declared(template_path: Path) -> None:
    # `sam package` reads the two paths relative to the template it packages.
    metadata = publish_metadata(template_path)
    license_text = (template_path.parent / metadata.license_url).read_text(encoding="utf-8")
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert (template_path.parent / metadata.readme_url).is_file()
    assert "panther-analysis" in (PROJECT_ROOT / "NOTICE").read_text(encoding="utf-8")


def test_the_changelog_has_a_section_for_this_version() -> None:
    changelog = (PROJECT_ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog
    assert f"## [{project_version()}]" in changelog
