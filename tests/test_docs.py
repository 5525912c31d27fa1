"""Every code block in the docs runs or is checked, and generated pages stay generated."""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import json
import re
import shlex
import sqlite3
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

from omnichannel.cli._main import build_parser
from omnichannel.cli._settings import Config
from omnichannel.registry import adapters, load_adapter

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PAGES = sorted([*DOCS.rglob("*.md"), REPO / "README.md"])
FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                   re.MULTILINE | re.DOTALL)
SNIPPET = re.compile(r'^\s*--8<--\s+"(?P<path>[^"]+)"\s*$', re.MULTILINE)

# Pages whose python blocks are fragments (placeholders, names from earlier pages) and do
# not run yet. Their blocks must still compile; one that fails to run is reported as an
# expected failure with the reason, one that runs is checked like any other. Empty: every
# block runs; a page added here needs the reason and a plan to make it run.
NOT_RUNNABLE_YET: dict[str, str] = {}


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int
    language: str
    info: str
    body: str

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def _blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        info = match["info"].strip()
        language = info.split()[0] if info else ""
        indent = len(match["indent"])
        body = "\n".join(line[indent:] for line in match["body"].splitlines())
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(page, line, language.lower(), info, body))
    return found


BLOCKS = [block for page in PAGES for block in _blocks(page)]
PYTHON = [b for b in BLOCKS if b.language in ("python", "py")]


def _params(blocks: list[Block]) -> list[Any]:
    return [pytest.param(block, id=block.id) for block in blocks]


# python ----------------------------------------------------------------------------


def _expected_output(source: str) -> list[str]:
    return [line.strip()[3:] if line.strip() != "#>" else ""
            for line in source.splitlines() if line.strip().startswith("#>")]


class _Session:
    """Runs a page's python blocks one after another in one namespace (like a reader)."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {"__name__": "__docs__"}

    def run(self, source: str) -> str:
        tree = ast.parse(source)
        code = compile(tree, "<docs>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            result = eval(code, self.namespace)  # noqa: S307 - the docs are our own code
            if result is not None:  # top-level await: a coroutine to run
                async def finish() -> None:
                    await result

                anyio.run(finish)
        return buffer.getvalue()


_SESSIONS: dict[Path, _Session] = {}


def _included(block: Block) -> list[Path]:
    """Files a block includes (``"path"``, ``"path:section"`` or ``"path:start:end"``)."""
    found = []
    for match in SNIPPET.finditer(block.body):
        path = REPO / match["path"]
        while not path.exists() and ":" in path.name:
            path = path.with_name(path.name.rsplit(":", 1)[0])
        found.append(path)
    return found


@pytest.mark.parametrize("block", _params(PYTHON))
def test_python_block_runs_and_prints_what_it_shows(block: Block, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A python block is an included, tested example file, or it runs and prints its #> lines."""
    included = _included(block)
    if included:
        for path in included:
            assert path.is_file(), f"{block.id} includes missing {path}"
            top = path.relative_to(REPO).parts[0]
            assert top in ("examples", "tests"), f"{block.id}: include only files the tests run"
        return
    compile(block.body, block.id, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    monkeypatch.chdir(tmp_path)
    session = _SESSIONS.setdefault(block.page, _Session())
    page = str(block.page.relative_to(REPO))
    if page in NOT_RUNNABLE_YET:
        try:
            printed = session.run(block.body)
        except Exception as exc:  # the page is known not to run yet
            pytest.xfail(f"{NOT_RUNNABLE_YET[page]} ({type(exc).__name__}: {exc})")
    else:
        printed = session.run(block.body)
    expected = _expected_output(block.body)
    if expected:
        assert printed.rstrip("\n").splitlines() == expected, block.id


# shell -----------------------------------------------------------------------------


def _lines(body: str) -> Iterator[str]:
    """The block's lines, with ``\\``-continued lines joined into one."""
    pending = ""
    for raw in body.splitlines():
        line = raw.strip()
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def _commands(body: str, console: bool) -> Iterator[list[str]]:
    for line in _lines(body):
        if console:
            if not line.startswith("$ "):
                continue  # output
            line = line[2:]
        if not line or line.startswith("#"):
            continue
        for part in line.split("&&"):
            yield shlex.split(part, comments=True)


def _quickbot() -> ModuleType:
    path = REPO / "examples" / "quickbot.py"
    spec = importlib.util.spec_from_file_location("docs_quickbot", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_command(argv: list[str]) -> None:
    program = Path(argv[0]).name
    args = argv[1:]
    if program.startswith("python") and args[:2] == ["-m", "omnichannel"]:
        program, args = "omnichannel", args[2:]
    if program == "omnichannel":
        build_parser().parse_args(args)
    elif program.startswith("python") and args[:2] == ["-m", "omnichannel_meta"]:
        from omnichannel_meta.__main__ import build_parser as meta_parser

        meta_parser().parse_args(args[2:])
    elif program.startswith("python") and args and args[0].endswith("examples/quickbot.py"):
        _quickbot().bot._parser().parse_args(args[1:])


SHELL = [b for b in BLOCKS if b.language in ("sh", "bash", "shell", "console")]


@pytest.mark.parametrize("block", _params(SHELL))
def test_shell_block_uses_real_commands_and_options(block: Block) -> None:
    """`omnichannel ...` and `python examples/quickbot.py ...` lines parse with today's options."""
    for argv in _commands(block.body, console=block.language == "console"):
        try:
            _check_command(argv)
        except SystemExit as exc:
            pytest.fail(f"{block.id}: `{shlex.join(argv)}` is not a valid command ({exc})")


def _replay_id(block: Block, argv: list[str]) -> str:
    return ":".join([block.id, *(Path(arg).name for arg in argv[3:] if "/" in arg)])


REPLAY = [
    pytest.param(argv, id=_replay_id(block, argv))
    for block in SHELL
    for argv in _commands(block.body, console=block.language == "console")
    if argv[:2] == ["omnichannel", "replay"]
]

# What the pages say each recorded payload shows (checked when the page replays it).
REPLAY_SHOWS = {
    "mastodonpy__test_notifications.json": ['text: "@mastodonpy_test hello!"', "from @admin"],
    "mastodonpy__test_stream_user_direct.json": ["message.updated", "message.deleted", "(us)"],
    "bskyr__n_notifications.json": ["31 events from 1 payload"],
    "jetstream__golden_v1.jsonl": ["1 event from 1 payload"],
    "restfb__webhooks__feed-comment-add-211.json": ['text: "and the next one"'],
    "restfb__webhooks__messaging-message-basic.json": ['text: "hello, world!"', "private"],
    "restfb__wh-comments-2021.json": ["from @testuser", "conversation instagram:76543987"],
    "restfb__wh-comments.json": ["from @unknown", 'text: "This is an example."'],
    "tweepy__test_client_get_users_mentions.json": [
        "10 events from 1 payload", 'text: "@Twitter make 🤨 an available reaction emoji in dms"'],
    "tweepy__test_manage_and_lookup_direct_messages.json": [
        'text: "Testing 1"', "conversation x:750362064426721281-1072250532645998596"],
}


def test_the_how_to_pages_replay_recorded_payloads() -> None:
    """Both network how-tos show replay commands (the next test runs each one)."""
    networks = {argv[2] for param in REPLAY for argv in param.values}
    assert {"mastodon", "bluesky", "facebook", "instagram"} <= networks


@pytest.mark.parametrize("argv", REPLAY)
def test_replay_command_runs_as_written(argv: list[str], monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """`omnichannel replay` lines read files of the repository, exit 0 and show what they say."""
    from omnichannel.cli._main import main

    monkeypatch.chdir(REPO)
    files = [arg for arg in argv[3:] if not arg.startswith("-") and "/" in arg]
    assert files, f"`{shlex.join(argv)}` names no payload file"
    for name in files:
        path = (REPO / name).resolve()
        assert path.is_relative_to(REPO), f"{name} is outside the repository"
        assert path.is_file(), f"{name} is not in the repository"
    status = main(argv[1:])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert re.search(r"^[1-9]\d* events? from [1-9]\d* payloads?", captured.out + captured.err,
                     re.MULTILINE), captured.err
    if "--json" in argv:
        events = [json.loads(line) for line in captured.out.splitlines()]
        assert events
        assert all(event["network"] == argv[2] for event in events)
    else:
        for name in files:
            for shown in REPLAY_SHOWS.get(Path(name).name, []):
                assert shown in captured.out, f"{name}: {shown!r} not shown"


# data ------------------------------------------------------------------------------


DATA = [b for b in BLOCKS if b.language in ("toml", "json", "sql")]


@pytest.mark.parametrize("block", _params(DATA))
def test_data_block_parses(block: Block, tmp_path: Path) -> None:
    """TOML, JSON and SQL blocks parse; a settings file's network sections validate."""
    body = block.body
    for path in _included(block):
        assert path.is_file(), f"{block.id} includes missing {path}"
        match = SNIPPET.search(body)
        assert match is not None
        body = body[:match.start()] + path.read_text(encoding="utf-8") + body[match.end():]
    if block.language == "json":
        json.loads(body)
    elif block.language == "sql":
        assert sqlite3.complete_statement(body), block.id
    else:
        data = tomllib.loads(body)
        networks = {info.network for info in adapters() if info.ok}
        sections = [name for name, value in data.items()
                    if isinstance(value, dict) and name in networks]
        if sections:
            path = tmp_path / "omnichannel.toml"
            path.write_text(body, encoding="utf-8")
            config = Config.load(path, environ={})
            for name in sections:
                config.build(load_adapter(name))


def test_every_block_has_a_known_language() -> None:
    """Code blocks in docs/ say what they hold; text blocks are output or diagrams, not code."""
    known = {"python", "py", "sh", "bash", "shell", "console", "toml", "json", "sql", "text",
             "yaml", "ini", "dockerfile"}
    unlabelled = [b.id for b in BLOCKS if b.language not in known and b.page.is_relative_to(DOCS)]
    assert not unlabelled, f"label these blocks (```text for output): {unlabelled}"


# generated pages -------------------------------------------------------------------


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["docs_hooks"] = module
    spec.loader.exec_module(module)
    return module


def test_capability_table_is_generated_not_written() -> None:
    """The page holds the marker only; the build puts the installed adapters' declarations there."""
    hooks = _hooks()
    page = (DOCS / "explanation" / "capabilities.md").read_text(encoding="utf-8")
    assert hooks.CAPABILITIES in page
    assert "| capability |" not in page
    built = hooks.on_page_markdown(page, None, None, None)
    assert "| capability | bluesky | facebook | instagram | mastodon | x |" in built
    assert "| public text | 300 graphemes, at most 3000 UTF-8 bytes |" in built
    mastodon = load_adapter("mastodon")
    assert f"`{mastodon.__module__}.MastodonAdapter.capabilities`" in built


def test_cli_reference_is_generated_from_the_parser() -> None:
    """The CLI page shows the parser's own help for every subcommand."""
    hooks = _hooks()
    built = hooks.on_page_markdown(hooks.CLI, None, None, None)
    for command in ("adapters", "demo", "serve", "inbox", "replay", "drafts", "drafts list",
                    "drafts approve", "drafts reject"):
        assert f"### `omnichannel {command}`" in built
    assert "--until-idle" not in built  # that is the bot's option, not the command's


def test_hooks_are_registered_in_mkdocs() -> None:
    """mkdocs.yml runs docs/hooks.py at build time."""
    config = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    assert re.search(r"^hooks:\s*\n\s*-\s*docs/hooks\.py\s*$", config, re.MULTILINE)


def test_the_site_publishes_pages_and_the_stylesheet_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/hooks.py runs at build time but is not published; the stylesheet and screenshot are."""
    from mkdocs.config import load_config
    from mkdocs.structure.files import get_files

    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")
    monkeypatch.chdir(REPO)
    files = get_files(load_config(str(REPO / "mkdocs.yml")))
    published = {f.src_uri for f in files if f.inclusion.is_included()}
    assert "hooks.py" not in published
    assert {uri for uri in published if not uri.endswith(".md")} == {
        "stylesheets/extra.css", "images/agent-inbox.png",  # the agent inbox's screenshot
    }


def test_code_blocks_wrap_and_keep_clear_of_the_copy_button() -> None:
    """Long code lines wrap instead of being cut off, with a margin for the copy button."""
    config = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    assert re.search(r"^extra_css:\s*\n\s*-\s*stylesheets/extra\.css\s*$", config, re.MULTILINE)
    assert re.search(r"^\s*-\s*toc\.integrate\b", config, re.MULTILINE)  # code gets the width
    css = (DOCS / "stylesheets" / "extra.css").read_text(encoding="utf-8")
    rule = re.search(r"\.md-typeset pre > code \{(?P<body>[^}]*)\}", css)
    assert rule is not None
    assert "white-space: pre-wrap" in rule["body"]
    assert "padding-right" in rule["body"]


def test_home_page_shows_install_from_a_clone_and_a_first_bot() -> None:
    """The home page installs from a clone (nothing is published) and includes a tested example."""
    page = (DOCS / "index.md").read_text(encoding="utf-8")
    blocks = _blocks(DOCS / "index.md")
    installs = [b for b in blocks if b.language == "sh" and "pip install -e ." in b.body]
    assert installs
    assert "-e ./adapters/mastodon" in installs[0].body
    assert any(_included(b) == [REPO / "examples" / "quickbot.py"] for b in blocks)
    assert "pip install omnichannel" not in page


def test_readme_leads_with_run_sync_and_stops_without_polling() -> None:
    """The first example runs the bot with run_sync; the offline one stops on wait_idle."""
    python = [b for b in PYTHON if b.page == REPO / "README.md"]
    assert "hub.run_sync()" in python[0].body
    offline = next(b for b in python if "Sandbox" in b.body)
    assert "await hub.wait_idle()" in offline.body
    assert "statistics()" not in offline.body
    assert "anyio.sleep" not in offline.body


def test_demo_transcript_matches_the_demo_of_today() -> None:
    """docs/demo.md shows the demo's current checks and summary columns."""
    page = (DOCS / "demo.md").read_text(encoding="utf-8")
    from omnichannel._demo._report import NetworkFigures, figures_table

    header = figures_table([NetworkFigures("mastodon")]).splitlines()[0]
    assert header in page
    assert "all expectations met" in page
    assert "FAIL" not in page
