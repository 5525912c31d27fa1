"""mkdocs hooks: pages whose tables are generated from the code at build time.

``<!-- omnichannel:capabilities -->`` becomes the capability table of every
installed adapter, from the ``capabilities`` each adapter class declares (the
same data ``omnichannel adapters`` prints). ``<!-- omnichannel:cli -->``
becomes the ``--help`` of the ``omnichannel`` command and its subcommands.
Registered in ``mkdocs.yml`` under ``hooks:``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from omnichannel.cli._capabilities import capability_matrix
from omnichannel.cli._main import build_parser
from omnichannel.registry import adapters

CAPABILITIES = "<!-- omnichannel:capabilities -->"
CLI = "<!-- omnichannel:cli -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or " "


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """Render a Markdown table (pipes in cells escaped)."""
    lines = [
        "| " + " | ".join(_cell(h) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows)
    return "\n".join(lines)


def capabilities_markdown() -> str:
    """The capability table of the installed adapters, with where each comes from."""
    infos = adapters()
    if not infos:
        return "*No adapter was installed when these docs were built.*"
    headers, rows = capability_matrix(infos)
    sources = markdown_table(
        ["network", "distribution", "version", "declared by"],
        [[i.network, i.distribution or "?", i.version or "?",
          f"`{i.adapter.__module__}.{i.adapter.__qualname__}.capabilities`" if i.adapter
          else f"failed to load: {i.error}"]
         for i in infos],
    )
    return markdown_table(headers, rows) + "\n\n" + sources


def cli_markdown() -> str:
    """The help of ``omnichannel`` and of each subcommand, as text blocks."""
    os.environ.setdefault("COLUMNS", "100")
    parser = build_parser()
    parts = ["```text\n" + parser.format_help().rstrip() + "\n```"]

    def commands(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:  # argparse keeps subparsers here
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    usage = sub.format_help().rstrip()
                    parts.append(f"### `{prefix} {name}`\n\n```text\n{usage}\n```")
                    commands(sub, f"{prefix} {name}")  # e.g. `omnichannel drafts approve`

    commands(parser, "omnichannel")
    return "\n\n".join(parts)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the markers with the generated tables."""
    if CAPABILITIES in markdown:
        markdown = markdown.replace(CAPABILITIES, capabilities_markdown())
    if CLI in markdown:
        markdown = markdown.replace(CLI, cli_markdown())
    return markdown
