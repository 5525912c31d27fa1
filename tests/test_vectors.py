"""tests/vectors/SOURCES.md describes exactly the recorded payloads, and their licences ship."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

VECTORS = Path(__file__).resolve().parent / "vectors"
SOURCES = VECTORS / "SOURCES.md"
ROW = re.compile(r"^\| `(?P<file>[^`]+)` \| (?P<repo>[^ |]+) \| `[^`]+` "
                 r"\| `(?P<commit>[0-9a-f]{12})` "
                 r"\| \[(?P<licence>[^\]]+)\]\((?P<text>LICENSES/[^)]+)\) "
                 r"\| (?P<kind>[^|]+) \|"
                 r".* \(sha256 `(?P<sha>[0-9a-f]{12})`\) \|$")
DECODED = re.compile(r"^- `(?P<file>[^`]+)` ← `(?P<origin>[^`]+)` "
                     r"\(sha256 `(?P<sha>[0-9a-f]{12})`\)$")
KINDS = {"recorded", "recorded-anonymized or doc-sample", "doc-sample", "schema"}


def _payloads() -> set[str]:
    return {str(path.relative_to(VECTORS)) for path in VECTORS.rglob("*")
            if path.is_file() and path.parent != VECTORS and path.parent.name != "LICENSES"}


def _digest(name: str) -> str:
    return hashlib.sha256((VECTORS / name).read_bytes()).hexdigest()[:12]


def _listed() -> tuple[list[re.Match[str]], list[re.Match[str]]]:
    lines = SOURCES.read_text(encoding="utf-8").splitlines()
    rows = [m for line in lines if (m := ROW.match(line))]
    decoded = [m for line in lines if (m := DECODED.match(line))]
    return rows, decoded


def test_sources_list_every_file_once_with_its_digest() -> None:
    """Every payload has one row (or decoded line) with its sha256; no row names a missing file."""
    rows, decoded = _listed()
    names = [m["file"] for m in rows] + [m["file"] for m in decoded]
    assert len(names) == len(set(names)), "a file is listed twice"
    assert set(names) == _payloads()
    wrong = [m["file"] for m in [*rows, *decoded] if _digest(m["file"]) != m["sha"]]
    assert not wrong, f"sha256 in SOURCES.md does not match the file: {wrong}"


def test_every_row_names_a_known_kind_and_a_shipped_licence_text() -> None:
    """Each row's licence links a text under LICENSES/ that names the upstream and its terms."""
    rows, decoded = _listed()
    assert rows
    for m in rows:
        assert m["kind"].strip() in KINDS, m["file"]
        text = (VECTORS / m["text"]).read_text(encoding="utf-8")
        assert m["repo"] in text, f"{m['text']} does not name {m['repo']}"
        if "used under the MIT licence" in text:
            assert re.search(r"^Copyright \(c\) \d{4}", text, re.MULTILINE), m["text"]
            assert "Permission is hereby granted, free of charge" in text
        else:
            assert "Apache-2.0.txt" in text
            apache = (VECTORS / "LICENSES" / "Apache-2.0.txt").read_text(encoding="utf-8")
            assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in apache
    rows_by_file = {m["file"] for m in rows}
    for m in decoded:
        assert m["origin"] in rows_by_file, f"{m['file']} derives from an unlisted file"


def test_unlicensed_documentation_samples_are_not_shipped() -> None:
    """X's documentation samples have no licence: none is in the tree, and the page says so."""
    assert not (VECTORS / "twitter" / "account-activity-docs").exists()
    assert not any("xdevplatform/docs" in m["repo"] for m in _listed()[0])
    assert "X (Twitter) documentation samples" in SOURCES.read_text(encoding="utf-8")


def test_no_file_of_the_repository_points_outside_it() -> None:
    """Tests, docs, examples and benchmarks name no folder beside or above the clone."""
    repo = VECTORS.parent.parent
    outside = re.compile(r"\.\./shared|/work/shared|parents\[[4-9]\]")
    found = []
    for folder in ("src", "tests", "adapters", "docs", "examples", "bench"):
        for path in (repo / folder).rglob("*"):
            if path.suffix not in {".py", ".md", ".toml", ".yml", ".yaml"}:
                continue
            if ".venv" in path.parts or path.is_relative_to(VECTORS) or path == Path(__file__):
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            found += [f"{path.relative_to(repo)}: {m[0]}" for m in outside.finditer(text)]
    for name in ("README.md", "mkdocs.yml", "pyproject.toml"):
        text = (repo / name).read_text(encoding="utf-8")
        found += [f"{name}: {m[0]}" for m in outside.finditer(text)]
    assert not found
