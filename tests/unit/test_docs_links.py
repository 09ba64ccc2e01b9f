"""Every relative link in README.md and docs/*.md points to a file or folder of the repository.

A link is a Markdown link target ``[text](target)`` or an HTML ``src``/``href`` attribute; links
with a scheme (``https:``, ``mailto:``) and links inside the same page (``#anchor``) are not
checked, and an anchor after a path is ignored (only the path must exist).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HTML_LINK = re.compile(r"""\b(?:src|href)=["']([^"']+)["']""")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def relative_links(markdown: str) -> list[str]:
    """The relative link targets of a Markdown text, without their anchors; code blocks skipped."""
    text = FENCE.sub("", markdown)
    targets = MARKDOWN_LINK.findall(text) + HTML_LINK.findall(text)
    paths = [t.split("#", 1)[0] for t in targets if not SCHEME.match(t) and not t.startswith("#")]
    return [p for p in paths if p]


def broken_links(document: Path) -> list[str]:
    return [
        link for link in relative_links(document.read_text(encoding="utf-8")) if not (document.parent / link).exists()
    ]


def test_relative_links_are_found_and_anchors_and_urls_skipped() -> None:
    text = (
        "[a](docs/a.md) [b](../b.md#part) [c](#here) [d](https://example.org/x) "
        '<img src="docs/p.png" alt="p"> [e](mailto:x@example.org)\n```sh\n[f](not/a/link.md)\n```\n'
    )
    assert relative_links(text) == ["docs/a.md", "../b.md", "docs/p.png"]


def test_a_missing_target_is_reported(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("x")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md) [gone](missing.md#x) <img src='gone.png'>")
    assert broken_links(page) == ["missing.md", "gone.png"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file(document: Path) -> None:
    assert broken_links(document) == [], f"{document.relative_to(ROOT)} links to files that do not exist"


def test_the_documents_exist() -> None:
    names = {p.name for p in DOCUMENTS}
    assert {"README.md", "architecture.md", "operations.md", "security.md", "benchmarks.md", "testing.md"} <= names
