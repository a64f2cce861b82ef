"""The documentation holds together: every relative link and anchor in README.md and docs/ resolves, the README
stays a front page, the index lists the Makefile's commands, and the code picture draws the real imports.

Links and headings are read with markdown-it-py (the CommonMark parser rich uses), so that a link in a code block
is no link and a heading is what a Markdown renderer takes for one. Anchors follow GitHub's slugs."""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from tests.support.cases import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
README_MAX_LINES = 250
DOCUMENTS = sorted([README, *PROJECT_ROOT.glob("docs/**/*.md"), *PROJECT_ROOT.glob("events/*.md")])

_PARSER = MarkdownIt("commonmark").enable("table")
# GitHub lets a link point at lines of a file it shows as code: template.yaml#L10 or #L10-L20.
_LINE_ANCHOR = re.compile(r"L\d+(-L\d+)?")


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, every character but letters, digits, '_', '-' and spaces
    dropped, each space a '-'. Repeats are numbered by ``anchors``."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _inline_text(token: Token) -> str:
    """A heading's text as rendered: code spans keep their content, emphasis and link markup go."""
    return "".join(child.content for child in token.children or () if child.type in ("text", "code_inline"))


def anchors(markdown: str) -> set[str]:
    """Every heading anchor of a document; the second heading with the same slug gets '-1', the third '-2'."""
    tokens = _PARSER.parse(markdown)
    seen: Counter[str] = Counter()
    found = set()
    for opening, inline in zip(tokens, tokens[1:]):
        if opening.type != "heading_open":
            continue
        slug = github_slug(_inline_text(inline))
        found.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
        seen[slug] += 1
    return found


@dataclass(frozen=True)
class Link:
    document: Path
    line: int
    target: str

    def __str__(self) -> str:
        return f"{self.document.relative_to(PROJECT_ROOT)}:{self.line}: {self.target}"


def links(document: Path) -> Iterator[Link]:
    """The link and image targets of a document, with the line each stands on."""
    for block in _PARSER.parse(document.read_text(encoding="utf-8")):
        for child in block.children or ():
            target = child.attrs.get("href") if child.type == "link_open" else child.attrs.get("src")
            if child.type in ("link_open", "image") and isinstance(target, str):
                yield Link(document, (block.map or (0, 0))[0] + 1, target)


def broken(link: Link) -> str | None:
    """Why a relative link does not resolve, or None when it does (or is not relative)."""
    parts = urlsplit(link.target)
    if parts.scheme or parts.netloc:
        return None
    target = (link.document.parent / unquote(parts.path)).resolve() if parts.path else link.document
    if not target.is_relative_to(PROJECT_ROOT):
        return "points outside the repository"
    if not target.exists():
        return "no such file"
    if not parts.fragment:
        return None
    if target.suffix != ".md":
        return None if _LINE_ANCHOR.fullmatch(parts.fragment) else "an anchor into a file that has no headings"
    if unquote(parts.fragment) not in anchors(target.read_text(encoding="utf-8")):
        return f"no heading with the anchor #{parts.fragment}"
    return None


def test_the_documents_are_found() -> None:
    names = {document.relative_to(PROJECT_ROOT).as_posix() for document in DOCUMENTS}
    assert {"README.md", "docs/README.md", "docs/deploy.md"} <= names


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.relative_to(PROJECT_ROOT).as_posix())
def test_every_relative_link_and_anchor_resolves(document: Path) -> None:
    failures = [f"{link}: {reason}" for link in links(document) if (reason := broken(link))]
    assert not failures, "\n".join(failures)


def test_every_docs_page_is_reachable_from_the_readme_or_the_index() -> None:
    linked = {
        (link.document.parent / urlsplit(link.target).path).resolve()
        for document in (README, PROJECT_ROOT / "docs" / "README.md")
        for link in links(document)
        if not urlsplit(link.target).scheme and urlsplit(link.target).path
    }
    unlinked = [page.name for page in PROJECT_ROOT.glob("docs/*.md") if page.name != "README.md" and page not in linked]
    assert not unlinked, f"docs pages no index links to: {unlinked}"


def test_the_readme_is_a_front_page() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move the detail into docs/"


def test_the_index_lists_the_makefiles_commands() -> None:
    """The Makefile's user commands (targets with a `## help` comment) and the index's table of commands agree."""
    described = re.findall(r"^([a-z][a-z-]*):.*?## ", (PROJECT_ROOT / "Makefile").read_text(), re.MULTILINE)
    index = (PROJECT_ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| `make ([a-z-]+)` \|", index, re.MULTILINE)
    assert described, "no described target found in the Makefile"
    assert sorted(listed) == sorted(described)


# The checker itself, on documents written for it: a checker that never fails proves nothing.


def test_slugs_follow_github(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Trying it with `sam local invoke` (Docker)\n\n## Before switching it on: backtest\n\n"
        "## Notes\n\n## Notes\n\n### Notes\n\n## *Über* [links](x.md) & more_things\n"
    )
    assert anchors(page.read_text()) == {
        "trying-it-with-sam-local-invoke-docker",
        "before-switching-it-on-backtest",
        "notes",
        "notes-1",
        "notes-2",
        "über-links--more_things",
    }


def test_a_broken_link_or_anchor_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(f"{__name__}.PROJECT_ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "target.md").write_text("# Target\n\n## A section\n")
    (tmp_path / "template.yaml").write_text("Resources: {}\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "[ok](target.md#a-section) [ok](#here) [ok](../template.yaml#L1) [ok](https://example.com/#x)\n\n"
        "# Here\n\n```\n[not a link](missing.md)\n```\n\n"
        "[gone](missing.md) [bad anchor](target.md#b-section) [outside](../../etc/passwd) [yaml](../template.yaml#x)\n"
    )
    reasons = {link.target: broken(link) for link in links(page)}
    assert reasons == {
        "target.md#a-section": None,
        "#here": None,
        "../template.yaml#L1": None,
        "https://example.com/#x": None,
        "missing.md": "no such file",
        "target.md#b-section": "no heading with the anchor #b-section",
        "../../etc/passwd": "points outside the repository",
        "../template.yaml#x": "an anchor into a file that has no headings",
    }


# The code picture in docs/development.md: a Mermaid block whose nodes are files and whose arrows are imports.
_NODE = re.compile(r'^\s*(\w+)\["([\w/]+\.py)<br/>', re.MULTILINE)
_EDGE = re.compile(r"^\s*(\w+) --> ([\w &]+)$", re.MULTILINE)


def drawn_imports(markdown: str) -> tuple[set[str], set[tuple[str, str]]]:
    """The files and arrows of the Mermaid block that draws functions/detector/app.py."""
    block = next(
        token.content for token in _PARSER.parse(markdown) if token.info == "mermaid" and "app.py" in token.content
    )
    files = {node: path for node, path in _NODE.findall(block)}
    arrows = {
        (files[source], files[target.strip()])
        for source, targets in _EDGE.findall(block)
        for target in targets.split("&")
    }
    return set(files.values()), arrows


def imported_modules(path: Path) -> set[str]:
    """The top-level module names a Python file imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_the_code_picture_draws_the_functions_imports() -> None:
    """Every module of the function is drawn, and the arrows are exactly the imports between the drawn files."""
    files, arrows = drawn_imports((PROJECT_ROOT / "docs" / "development.md").read_text(encoding="utf-8"))
    function_dir = PROJECT_ROOT / "functions" / "detector"
    # The function's modules are drawn by file name; any other file by its path from the project's root.
    source = {name: PROJECT_ROOT / name if "/" in name else function_dir / name for name in files}
    modules = {path.stem: path.name for path in function_dir.glob("*.py")}
    assert set(modules.values()) <= files, f"modules of the function not drawn: {set(modules.values()) - files}"
    imports = {
        (name, modules[module]) for name in files for module in imported_modules(source[name]) if module in modules
    }
    assert arrows == imports, f"drawn, not imported: {arrows - imports}; imported, not drawn: {imports - arrows}"
