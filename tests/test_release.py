"""One version, in pyproject.toml and in the metadata `sam publish` reads, and everything that metadata points to."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from samcli.vendor.serverlessrepo.application_metadata import ApplicationMetadata
from samcli.vendor.serverlessrepo.parser import get_app_metadata, parse_template

from tests.support.cloudformation import PROJECT_ROOT, TEMPLATE_PATH

SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")


def project_version() -> str:
    return str(tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"])


def publish_metadata() -> ApplicationMetadata:
    """The metadata as `sam publish` parses it, with the SAM CLI's own parser."""
    template = parse_template((TEMPLATE_PATH).read_text(encoding="utf-8"))
    return get_app_metadata(template)


def test_the_template_and_pyproject_carry_the_same_semantic_version() -> None:
    assert SEMVER.fullmatch(project_version())
    assert publish_metadata().semantic_version == project_version()


def test_sam_publish_finds_what_it_requires() -> None:
    metadata = publish_metadata()
    # The checks `sam publish` makes before creating an application, and before publishing a version.
    metadata.validate(["author", "description", "name"])
    metadata.validate(["semantic_version"])
    assert metadata.spdx_license_id == "Apache-2.0"


def test_metadata_values_are_plain_text_not_intrinsic_functions() -> None:
    def plain(value: Any) -> bool:
        if isinstance(value, list):
            return all(plain(item) for item in value)
        return isinstance(value, str)

    values = publish_metadata().template_dict
    assert all(plain(value) for value in values.values()), values


def test_license_and_readme_exist_and_the_license_is_the_one_declared() -> None:
    metadata = publish_metadata()
    license_text = (PROJECT_ROOT / metadata.license_url).read_text(encoding="utf-8")
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert (PROJECT_ROOT / metadata.readme_url).is_file()
    assert "panther-analysis" in (PROJECT_ROOT / "NOTICE").read_text(encoding="utf-8")


def test_the_changelog_has_a_section_for_this_version() -> None:
    changelog = (PROJECT_ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog
    assert f"## [{project_version()}]" in changelog
