"""Benchmark: import time of omnichannel and its adapters, against peer libraries.

Each measurement is a fresh interpreter running some imports, timed from
outside, minus a fresh interpreter running nothing (the interpreter's own
start). ``omnichannel`` loads its names on first use, so ``import omnichannel``
alone is nearly free; what a bot really pays is ``bot core`` (``from omnichannel
import Hub, Reply, SQLiteStore``), and an adapter's share is measured on top of
that. ``floor`` imports only the third-party pieces the bot core cannot start
without (pydantic with the types our models use, anyio, sqlite3): the bot core
minus the floor is what our own modules cost. ``floor + AnyUrl`` adds
``pydantic.AnyUrl`` (its module imports ``importlib.metadata``), which the
core now imports only when a model with a URL builds its validator. Peers: tweepy and Mastodon.py,
when installed (skipped with a message otherwise). Interleaved (the order
rotates each repeat); prints min and median milliseconds, ours over tweepy,
what each adapter adds, the heaviest modules of one ``python -X importtime``
run of the bot core, and the machine's load.

Goals: ``import omnichannel`` and the bot core <= tweepy's; each adapter adds <= 50 ms.

An adapter's share is also timed as one measurement: inside an interpreter
that imported the bot core first, the adapter's import alone (CPU time), which
leaves out the noise of subtracting two separate runs on a busy machine.

``--compare TREE`` times the bot core and the adapter cases of another checkout
too (``git worktree add /tmp/old main``, say; its ``src`` and ``adapters/*/src``
go first on ``PYTHONPATH`` for those runs), interleaved with ours in the same
run, and prints each as a ratio to its counterpart.

``--runtime-env DIR`` also times the cases in a runtime-only environment: a
venv at ``DIR`` (made on first use, about a minute; reused after) holding only
our packages and their required dependencies (``pip install -e . -e
adapters/...``, no extras: no click or pygments, which httpx's command line
imports when they are installed, as the ``server`` and ``docs`` extras do here),
and tweepy when it is installed here, so the peer runs in the same environment.

Run: ``.venv/bin/python bench/bench_import.py [--repeats 7] [--compare TREE]
[--runtime-env /tmp/omnichannel-runtime]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping

CORE = "from omnichannel import Hub, Reply, SQLiteStore"
CASES = {
    "import omnichannel": "import omnichannel",
    "bot core": CORE,
    "core + mastodon": f"{CORE}; import omnichannel_mastodon",
    "core + bluesky": f"{CORE}; import omnichannel_bluesky",
    # omnichannel_x loads its names on first use: the adapter's share is XAdapter's.
    "core + x": f"{CORE}; from omnichannel_x import XAdapter",
    "floor": "from pydantic import AwareDatetime, BaseModel, TypeAdapter; import anyio, sqlite3",
    # AnyUrl loads pydantic.networks, which imports importlib.metadata.
    "floor + AnyUrl": "from pydantic import AnyUrl, AwareDatetime, BaseModel, TypeAdapter; "
                      "import anyio, sqlite3",
}
PEERS = {"tweepy": "tweepy", "Mastodon.py": "mastodon"}


# Bytecode caching on, whatever this shell says: with PYTHONDONTWRITEBYTECODE
# set (as in some development shells) every module without a cached .pyc is
# compiled from source on each import, which is not what an installed bot pays
# (pip writes the .pyc files of what it installs). A warm-up run of each case
# writes them before the timed runs.
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


CPU: dict[str, list[float]] = {}
"""CPU seconds (user + system) of each case's runs: steadier than wall time on a busy machine."""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


ENVS: dict[str, dict[str, str]] = {}
"""The environment of each ``--compare`` case (``ENV`` for the others)."""

PYTHONS: dict[str, str] = {}
"""The interpreter of each ``--runtime-env`` case (``sys.executable`` for the others)."""

COMPARED = ("bot core", "core + mastodon", "core + bluesky", "core + x")
ADAPTER_CASES = ("core + mastodon", "core + bluesky", "core + x")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def runtime_python(venv: str) -> str:
    """The interpreter of a runtime-only venv at ``venv``, made (and installed into) if missing."""
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        print(f"making the runtime-only environment {venv} (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)  # noqa: S603
        packages = ["-e", ROOT] + [
            arg for name in sorted(os.listdir(os.path.join(ROOT, "adapters")))
            for arg in ("-e", os.path.join(ROOT, "adapters", name))
        ]
        if importlib.util.find_spec("tweepy") is not None:
            packages.append("tweepy")  # the peer, in the same environment
        subprocess.run(  # noqa: S603 - pip of the venv just made
            [python, "-m", "pip", "install", "-q", *packages], check=True
        )
    return python


def compare_env(tree: str) -> dict[str, str]:
    """``ENV`` with another checkout's packages first on ``PYTHONPATH``."""
    root = os.path.abspath(tree)
    paths = [os.path.join(root, "src")] + [
        os.path.join(root, "adapters", name, "src")
        for name in sorted(os.listdir(os.path.join(root, "adapters")))
    ]
    return {**ENV, "PYTHONPATH": os.pathsep.join(paths)}


ADAPTER_IMPORTS = {
    "mastodon": "import omnichannel_mastodon",
    "bluesky": "import omnichannel_bluesky",
    "x": "from omnichannel_x import XAdapter",
}
SHARES: dict[str, list[float]] = {}
"""CPU seconds of an adapter's import alone, timed inside an interpreter that imported the
bot core first: one measurement, not the difference of two, so less of the machine's noise."""


def share_code(adapter: str) -> str:
    return (f"{CORE}\nimport time\n_began = time.process_time()\n{ADAPTER_IMPORTS[adapter]}\n"
            "print(time.process_time() - _began)")


def run(code: str, name: str | None = None, env: dict[str, str] | None = None) -> float:
    began, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(  # noqa: S603 - our interpreter, or the runtime-only venv's
        [PYTHONS.get(name or "", sys.executable), "-c", code],
        check=True, env=env or ENV, capture_output=True, text=True,
    )
    if name is not None:
        CPU.setdefault(name, []).append(_children_cpu() - cpu)
        if "share: " in name:
            SHARES.setdefault(name, []).append(float(done.stdout))
    return time.perf_counter() - began


def heaviest(code: str, count: int) -> list[tuple[int, str]]:
    """(cumulative microseconds, name) of the heaviest imports that ``code`` makes."""
    result = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
        [sys.executable, "-X", "importtime", "-c", code],
        check=True, capture_output=True, text=True, env=ENV,
    )
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if cumulative.strip().isdigit():
            rows.append((int(cumulative), name.rstrip()))
    rows.sort(reverse=True)
    return rows[:count]


def summary(
    cost: Callable[[str], tuple[float, float]], prefix: str, times: Mapping[str, object],
    compared: bool,
) -> None:
    """Print the ratios and shares of one measure (wall or CPU) for one environment."""

    def ratio(ours: str, theirs: str) -> str:
        (low, mid), (their_low, their_mid) = cost(prefix + ours), cost(theirs)
        return f"{low / their_low:.2f} / {mid / their_mid:.2f}"

    peer = prefix + "tweepy"
    if peer in times:
        if not prefix:
            print(f"  import omnichannel / tweepy: {ratio('import omnichannel', peer)}; "
                  "goal <= 1.0")
        print(f"  {prefix}bot core / tweepy: {ratio('bot core', peer)}; goal <= 1.0")
        print(f"  {prefix}floor / tweepy: {ratio('floor', peer)}")
        # Like for like: a bot with its network's adapter (HTTP client included) vs that
        # network's library (its HTTP client included).
        print(f"  {prefix}core + x / tweepy: {ratio('core + x', peer)}")
    if not prefix and "Mastodon.py" in times:
        print(f"  core + mastodon / Mastodon.py: {ratio('core + mastodon', 'Mastodon.py')}")
    core, floor = cost(prefix + "bot core"), cost(prefix + "floor")
    print(f"  {prefix}bot core minus floor (our own modules): "
          f"{core[0] - floor[0]:.1f} / {core[1] - floor[1]:.1f} ms")
    if not prefix:
        with_url = cost("floor + AnyUrl")
        print(f"  AnyUrl on top of the floor: {with_url[0] - floor[0]:.1f} / "
              f"{with_url[1] - floor[1]:.1f} ms")
    for case in ADAPTER_CASES:
        low, mid = cost(prefix + case)
        print(f"  {prefix}{case.split()[-1]} adapter adds {low - core[0]:.1f} / "
              f"{mid - core[1]:.1f} ms; goal <= 50")
    for case in COMPARED if compared else ():
        print(f"  {case} / compared: {ratio(case, f'compared: {case}')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--compare", metavar="TREE", help="another checkout to time too")
    parser.add_argument("--runtime-env", metavar="DIR",
                        help="also time the cases in a runtime-only venv at DIR (made if missing)")
    args = parser.parse_args()

    cases = dict(CASES)
    cases.update({f"share: {adapter}": share_code(adapter) for adapter in ADAPTER_IMPORTS})
    if args.compare:
        for case in COMPARED:
            cases[f"compared: {case}"] = CASES[case]
            ENVS[f"compared: {case}"] = compare_env(args.compare)
        for adapter in ADAPTER_IMPORTS:
            cases[f"compared: share: {adapter}"] = share_code(adapter)
            ENVS[f"compared: share: {adapter}"] = compare_env(args.compare)
    for label, module in PEERS.items():
        if importlib.util.find_spec(module) is None:
            print(f"{label} is not installed: skipped (pip install {label})")
        else:
            cases[label] = f"import {module}"
    runtime = []
    if args.runtime_env:
        python = runtime_python(os.path.abspath(args.runtime_env))
        runtime = ["bot core", *ADAPTER_CASES, "floor"]
        peer = subprocess.run(  # noqa: S603 - the venv's interpreter
            [python, "-c", "import tweepy"], check=False, capture_output=True
        )
        if peer.returncode == 0:
            runtime.append("tweepy")
        for case in runtime:
            code = CASES.get(case, "import tweepy")
            cases[f"runtime: {case}"] = code
            PYTHONS[f"runtime: {case}"] = python
        for adapter in ADAPTER_IMPORTS:
            cases[f"runtime: share: {adapter}"] = share_code(adapter)
            PYTHONS[f"runtime: share: {adapter}"] = python
        cases["runtime: (interpreter)"] = "pass"
        PYTHONS["runtime: (interpreter)"] = python
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} cpus)")
    cases["(interpreter)"] = "pass"
    names = list(cases)
    reported = [name for name in names if "(interpreter)" not in name and "share: " not in name]
    for name in names:  # warm-up: writes the .pyc files, fills the OS file cache
        run(cases[name], env=ENVS.get(name))
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(args.repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(run(cases[name], name, env=ENVS.get(name)))
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()

    def baseline(name: str) -> str:
        return "runtime: (interpreter)" if name.startswith("runtime: ") else "(interpreter)"

    def wall(name: str) -> tuple[float, float]:
        base = times[baseline(name)]
        return ((min(times[name]) - min(base)) * 1000,
                (statistics.median(times[name]) - statistics.median(base)) * 1000)

    def cpu(name: str) -> tuple[float, float]:
        base = CPU[baseline(name)]
        return ((min(CPU[name]) - min(base)) * 1000,
                (statistics.median(CPU[name]) - statistics.median(base)) * 1000)

    print(f"{'':27} {'min ms':>8} {'median ms':>10} {'CPU min':>8} {'CPU median':>10}"
          "  (interpreter start subtracted)")
    for name in reported:
        print(f"{name:27} {wall(name)[0]:8.1f} {wall(name)[1]:10.1f} "
              f"{cpu(name)[0]:8.1f} {cpu(name)[1]:10.1f}")
    for label, cost in (("wall time", wall), ("CPU time (user + system of the child)", cpu)):
        print()
        print(f"{label}: min / median")
        summary(cost, "", times, args.compare is not None)
        if runtime:
            print("  runtime-only environment (no extras):")
            summary(cost, "runtime: ", times, False)
    print()
    print("an adapter's own import, timed inside an interpreter that imported the bot core first")
    print("(CPU, min / median ms; goal <= 50):")
    for prefix in ("", "compared: ", "runtime: "):
        for adapter in ADAPTER_IMPORTS:
            values = SHARES.get(f"{prefix}share: {adapter}")
            if values:
                print(f"  {prefix + adapter:22} {min(values) * 1000:7.1f} "
                      f"{statistics.median(values) * 1000:7.1f}")
    print()
    print("heaviest imports of the bot core (one -X importtime run, cumulative ms):")
    for cumulative, name in heaviest(CORE, 12):
        print(f"  {cumulative / 1000:7.1f}  {name.strip()}")


if __name__ == "__main__":
    main()
