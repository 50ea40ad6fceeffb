"""The documentation stands alone: nothing in the repository cites notes kept outside it, and
every relative link in the README and docs/ leads to a file that exists."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("README.md", "docs", "bench", "src", "tests")
SKIPPED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})

# Notes that live outside the repository. A bare `API.md` counts; `docs/api.md` and the like
# (a path before it, or another case) do not.
OUTSIDE_NOTES = re.compile(
    r"DESIGN\.md|STYLE\.md|\.\./shared\b|/work/shared\b|(?<![\w./-])API\.md\b"
)

LINKED_DOCS = ("README.md", "docs/*.md", "bench/README.md")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCED_BLOCK = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...


def _candidate_files() -> list[Path]:
    """Tracked files and new ones not ignored by git; every file when git is not at hand."""
    git = shutil.which("git")
    if git is not None and (ROOT / ".git").exists():
        listed = subprocess.run(
            [git, "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *SCANNED],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        return [ROOT / name for name in listed.split("\0") if name]
    found: list[Path] = []
    for top in SCANNED:
        path = ROOT / top
        if path.is_file():
            found.append(path)
            continue
        for folder, dirs, names in os.walk(path):
            dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
            found.extend(Path(folder) / name for name in names)
    return found


def _text(path: Path) -> str | None:
    """The file's text, or None for a binary file (or one that is gone)."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def test_nothing_cites_notes_kept_outside_the_repository() -> None:
    me = Path(__file__).resolve()
    citations = []
    for path in _candidate_files():
        if path.resolve() == me:
            continue
        text = _text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            match = OUTSIDE_NOTES.search(line)
            if match:
                citations.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)}")
    assert not citations, "cite the repository's own docs instead:\n" + "\n".join(citations)


def _linked_docs() -> list[Path]:
    return sorted({path for pattern in LINKED_DOCS for path in ROOT.glob(pattern)})


def _relative_links(markdown: str) -> list[str]:
    prose = INLINE_CODE.sub("", FENCED_BLOCK.sub("", markdown))
    targets = []
    for match in LINK.finditer(prose):
        target = match.group(1)
        if target.startswith("#") or EXTERNAL.match(target):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


@pytest.mark.parametrize("doc", _linked_docs(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_that_exists(doc: Path) -> None:
    broken = [
        target
        for target in _relative_links(doc.read_text(encoding="utf-8"))
        if not (doc.parent / target).exists()
    ]
    assert not broken, f"{doc.relative_to(ROOT)} links to missing files: {broken}"


def test_the_link_reader_finds_links_and_skips_code_and_urls() -> None:
    markdown = (
        "See [the map](api-map.md#cash), ![shot](img/a.png) and [`.env`](../.env.example).\n"
        "Not `[code](nowhere.md)`, not [site](https://example.org), not [here](#top).\n"
        "```\n[fenced](nowhere.md)\n```\n"
    )
    assert _relative_links(markdown) == ["api-map.md", "img/a.png", "../.env.example"]


@pytest.mark.parametrize(
    ("line", "cited"),
    [
        ("see DESIGN.md", True),
        ("(STYLE.md, rule 3)", True),
        ("the map in API.md", True),
        ("in ../shared/notes", True),
        ("see docs/api.md", False),
        ("see [api.md](api.md)", False),
        ("OPENAPI.md", False),
    ],
)
def test_the_citation_pattern_tells_outside_notes_from_our_docs(line: str, cited: bool) -> None:
    assert bool(OUTSIDE_NOTES.search(line)) is cited
