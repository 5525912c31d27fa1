"""examples/service: the systemd unit and the Dockerfile that run the bot as a service."""

from __future__ import annotations

import configparser
import fnmatch
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from contextlib import closing
from pathlib import Path, PurePosixPath

import anyio
import pytest

from omnichannel.store import SQLiteStore

REPO = Path(__file__).resolve().parent.parent
SERVICE = REPO / "examples" / "service"
DOCKERFILE = SERVICE / "Dockerfile"
UNIT = SERVICE / "helpdesk-bot.service"
HOW_TO = REPO / "docs" / "how-to" / "service.md"
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("OMNICHANNEL_")}


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            keyword, _, rest = pending.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
            pending = ""
    return found


def exec_form(value: str) -> list[str]:
    """A JSON-array instruction argument (CMD, HEALTHCHECK's CMD)."""
    import json

    array = value[value.index("[") :]
    parsed: list[str] = json.loads(array)
    return parsed


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


# Dockerfile -----------------------------------------------------------------------------


def test_dockerfile_copies_files_that_exist_and_are_not_ignored() -> None:
    """Every COPY source is in the repository, and the build's ignore file lets it through."""
    ignore = [
        line.strip() for line in (SERVICE / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def sent(path: str) -> bool:  # the last matching pattern wins, as in .dockerignore
        keep = True
        for pattern in ignore:
            negated = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, bare) or path.startswith(bare + "/"):
                keep = negated
        return keep

    copies = [rest.split() for keyword, rest in instructions() if keyword == "COPY"]
    assert copies
    for *sources, _ in copies:
        for source in sources:
            assert (REPO / source).exists(), source
            assert sent(source), f"{source} is excluded by Dockerfile.dockerignore"


def test_dockerfile_installs_the_core_with_what_its_build_includes() -> None:
    """pip installs only copied folders, after copying the files the core's wheel force-includes."""
    steps = instructions()
    copied = {PurePosixPath("/src", dest) if not dest.startswith("/") else PurePosixPath(dest)
              for keyword, rest in steps if keyword == "COPY"
              for dest in [rest.split()[-1]]}
    copied |= {PurePosixPath("/src", source) for keyword, rest in steps if keyword == "COPY"
               for source in rest.split()[:-1]}
    pip = next(i for i, (keyword, rest) in enumerate(steps)
               if keyword == "RUN" and rest.startswith("pip install"))
    targets = shlex.split(steps[pip][1].split("&&")[0])[2:]
    assert targets[0] == "."
    for target in targets[1:]:
        assert PurePosixPath("/src", target) in copied, target
        assert (REPO / target / "pyproject.toml").is_file(), target
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    included = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    before = [source for keyword, rest in steps[:pip] if keyword == "COPY"
              for source in rest.split()[:-1]]
    for path in [*included, pyproject["project"]["readme"]]:
        assert path in before or any(path.startswith(src + "/") for src in before), path


def test_dockerfile_runs_the_bot_with_its_store_on_the_volume() -> None:
    """CMD runs the copied bot; OMNICHANNEL_STORE lies in the VOLUME; SIGTERM stops it."""
    steps = dict(reversed(instructions()))  # the first of each keyword
    every = instructions()
    command = exec_form(next(rest for keyword, rest in reversed(every) if keyword == "CMD"))
    assert command[0] == "python"
    bot = command[1]
    assert any(keyword == "COPY" and rest.split()[-1] == bot for keyword, rest in every)
    env = " ".join(rest for keyword, rest in every if keyword == "ENV")
    store = next(part.split("=", 1)[1] for part in env.split() if part.startswith(
        "OMNICHANNEL_STORE="))
    volumes = exec_form(steps["VOLUME"])
    assert PurePosixPath(store).parent == PurePosixPath(volumes[0])
    assert steps["STOPSIGNAL"] == "SIGTERM"
    assert steps["USER"] != "root"


def test_the_health_check_command_tells_a_sound_store_from_a_broken_one(tmp_path: Path) -> None:
    """The HEALTHCHECK command exits 0 on a sound store, non-zero on a missing or damaged one."""
    health = exec_form(dict(instructions())["HEALTHCHECK"])
    assert health[0] == "omnichannel"
    store = tmp_path / "bot.db"

    def check() -> int:
        env = {**CLEAN_ENV, "OMNICHANNEL_STORE": str(store)}
        return subprocess.run([sys.executable, "-m", *health], env=env, cwd=tmp_path,
                              capture_output=True, timeout=60, check=False).returncode

    assert check() != 0  # no store yet
    anyio.run(_make_store, store)
    assert check() == 0
    with closing(sqlite3.connect(store)) as conn:
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
    with store.open("r+b") as f:
        f.truncate(store.stat().st_size * (pages - 1) // pages)
    assert check() != 0


async def _make_store(path: Path) -> None:
    async with SQLiteStore(path):
        pass


# systemd ----------------------------------------------------------------------------------


def test_systemd_unit_runs_the_bot_and_restarts_it_on_failure_only() -> None:
    """The unit parses as INI; ExecStart runs the bot; settings errors (exit 2) stop restarts.

    That a refused store ends the bot with status 2 is tested in test_store_sqlite_guard.py.
    """
    parsed = unit()
    assert set(parsed.sections()) == {"Unit", "Service", "Install"}
    service = parsed["Service"]
    python, bot = shlex.split(service["ExecStart"])
    assert python.endswith("/bin/python")
    assert bot.endswith(".py")
    assert service["KillSignal"] == "SIGTERM"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"
    store = PurePosixPath(service["Environment"].split("=", 1)[1])
    assert store.parent == PurePosixPath("/var/lib", service["StateDirectory"])
    assert parsed["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not on PATH")
def test_systemd_accepts_every_directive_of_the_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` knows every section and key (paths replaced by existing ones)."""
    text = UNIT.read_text(encoding="utf-8").replace(
        "/opt/helpdesk/venv/bin/python", str(Path(sys.executable).resolve())
    ).replace("EnvironmentFile=/", "EnvironmentFile=-/")
    copy = tmp_path / UNIT.name
    copy.write_text(text, encoding="utf-8")
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None
    done = subprocess.run([analyze, "verify", str(copy)], capture_output=True,
                          text=True, timeout=60, check=False)
    problems = [line for line in done.stderr.splitlines() if UNIT.name in line]
    assert done.returncode == 0, done.stderr
    assert problems == []


# the container build ----------------------------------------------------------------------


def _container_tool() -> tuple[str | None, str]:
    for tool in ("docker", "podman"):
        if shutil.which(tool) is None:
            continue
        info = subprocess.run([tool, "info"], capture_output=True, text=True, timeout=60,
                              check=False)
        if info.returncode == 0:
            return tool, ""
        return None, f"{tool} is on PATH but cannot build here ({tool} info failed)"
    return None, "no container tool (docker or podman) on PATH"


def test_the_image_builds_and_runs_the_bot_on_the_sandboxes() -> None:
    """Build the image, then run the bot in it against the sandboxes until it is idle."""
    tool, reason = _container_tool()
    if tool is None:
        pytest.skip(reason)
    tag = "omnichannel-service-test"
    build = subprocess.run([tool, "build", "-f", str(DOCKERFILE), "-t", tag, str(REPO)],
                           capture_output=True, text=True, timeout=1800, check=False)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    try:
        run = subprocess.run(
            [tool, "run", "--rm", tag, "python", "/app/bot.py", "--sandbox", "--until-idle",
             "--max-seconds", "60"],
            capture_output=True, text=True, timeout=600, check=False,
        )
        assert run.returncode == 0, run.stderr
        assert "replied publicly" in run.stdout
    finally:
        subprocess.run([tool, "rmi", "-f", tag], capture_output=True, timeout=120, check=False)


# the how-to -------------------------------------------------------------------------------


def test_the_how_to_shows_the_shipped_files() -> None:
    """The page includes the unit and the Dockerfile from examples/service, not copies."""
    page = HOW_TO.read_text(encoding="utf-8")
    for path in (UNIT, DOCKERFILE):
        assert f'--8<-- "{path.relative_to(REPO).as_posix()}"' in page
    mkdocs = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    assert "how-to/service.md" in mkdocs
