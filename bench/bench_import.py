"""Benchmark: import time of omnichannel and its adapters, against peer libraries.

Each measurement is a fresh interpreter running some imports, timed from
outside, minus a fresh interpreter running nothing (the interpreter's own
start). ``omnichannel`` loads its names on first use, so ``import omnichannel``
alone is nearly free; what a bot really pays is ``bot core`` (``from omnichannel
import Hub, Reply, SQLiteStore``), and an adapter's share is measured on top of
that. ``floor`` imports only the third-party pieces the bot core cannot start
without (pydantic with the types our models use, anyio, sqlite3): the bot core
minus the floor is what our own modules cost. Peers: tweepy and Mastodon.py,
when installed (skipped with a message otherwise). Interleaved (the order
rotates each repeat); prints min and median milliseconds, ours over tweepy,
what each adapter adds, the heaviest modules of one ``python -X importtime``
run of the bot core, and the machine's load.

Goals: ``import omnichannel`` and the bot core <= tweepy's; each adapter adds <= 50 ms.

``--compare TREE`` times the bot core and the adapter cases of another checkout
too (``git worktree add /tmp/old main``, say; its ``src`` and ``adapters/*/src``
go first on ``PYTHONPATH`` for those runs), interleaved with ours in the same
run, and prints each as a ratio to its counterpart.

Run: ``.venv/bin/python bench/bench_import.py [--repeats 7] [--compare TREE]``.
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

CORE = "from omnichannel import Hub, Reply, SQLiteStore"
CASES = {
    "import omnichannel": "import omnichannel",
    "bot core": CORE,
    "core + mastodon": f"{CORE}; import omnichannel_mastodon",
    "core + bluesky": f"{CORE}; import omnichannel_bluesky",
    # omnichannel_x loads its names on first use: the adapter's share is XAdapter's.
    "core + x": f"{CORE}; from omnichannel_x import XAdapter",
    # AnyUrl loads pydantic.networks, which imports importlib.metadata.
    "floor": "from pydantic import AnyUrl, AwareDatetime, BaseModel, TypeAdapter; "
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

COMPARED = ("bot core", "core + mastodon", "core + bluesky", "core + x")


def compare_env(tree: str) -> dict[str, str]:
    """``ENV`` with another checkout's packages first on ``PYTHONPATH``."""
    root = os.path.abspath(tree)
    paths = [os.path.join(root, "src")] + [
        os.path.join(root, "adapters", name, "src")
        for name in sorted(os.listdir(os.path.join(root, "adapters")))
    ]
    return {**ENV, "PYTHONPATH": os.pathsep.join(paths)}


def run(code: str, name: str | None = None, env: dict[str, str] | None = None) -> float:
    began, cpu = time.perf_counter(), _children_cpu()
    subprocess.run(  # noqa: S603 - our interpreter
        [sys.executable, "-c", code], check=True, env=env or ENV
    )
    if name is not None:
        CPU.setdefault(name, []).append(_children_cpu() - cpu)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--compare", metavar="TREE", help="another checkout to time too")
    args = parser.parse_args()

    cases = dict(CASES)
    if args.compare:
        for case in COMPARED:
            cases[f"compared: {case}"] = CASES[case]
            ENVS[f"compared: {case}"] = compare_env(args.compare)
    for label, module in PEERS.items():
        if importlib.util.find_spec(module) is None:
            print(f"{label} is not installed: skipped (pip install {label})")
        else:
            cases[label] = f"import {module}"
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} cpus)")
    cases["(interpreter)"] = "pass"
    names = list(cases)
    for name in names:  # warm-up: writes the .pyc files, fills the OS file cache
        run(cases[name], env=ENVS.get(name))
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(args.repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(run(cases[name], name, env=ENVS.get(name)))
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    base_min = min(times["(interpreter)"])
    base_median = statistics.median(times["(interpreter)"])

    def cost(name: str) -> tuple[float, float]:
        return ((min(times[name]) - base_min) * 1000,
                (statistics.median(times[name]) - base_median) * 1000)

    print(f"{'':27} {'min ms':>8} {'median ms':>10}  (interpreter start subtracted)")
    for name in names[:-1]:
        low, mid = cost(name)
        print(f"{name:27} {low:8.1f} {mid:10.1f}")
    print()
    if "tweepy" in times:
        peer_min, peer_median = cost("tweepy")
        for ours in ("import omnichannel", "bot core"):
            low, mid = cost(ours)
            print(f"{ours} / tweepy: {low / peer_min:.2f} (min) {mid / peer_median:.2f} "
                  "(median); goal <= 1.0")
    core_min, core_median = cost("bot core")
    floor_min, floor_median = cost("floor")
    print(f"bot core minus floor (our own modules): {core_min - floor_min:.1f} ms (min) "
          f"{core_median - floor_median:.1f} ms (median)")
    if "tweepy" in times:
        print(f"floor / tweepy: {floor_min / peer_min:.2f} (min) "
              f"{floor_median / peer_median:.2f} (median)")
    # Like for like: a bot with its network's adapter (HTTP client included) vs that network's
    # library (its HTTP client included).
    for case, peer in (("core + x", "tweepy"), ("core + mastodon", "Mastodon.py")):
        if peer in times:
            (low, mid), (peer_low, peer_mid) = cost(case), cost(peer)
            print(f"{case} / {peer}: {low / peer_low:.2f} (min) {mid / peer_mid:.2f} (median)")
    for case in ("core + mastodon", "core + bluesky", "core + x"):
        low, mid = cost(case)
        print(f"{case.split()[-1]} adapter adds {low - core_min:.1f} ms (min) "
              f"{mid - core_median:.1f} ms (median); goal <= 50")
    for case in COMPARED if args.compare else ():
        (low, mid), (old_low, old_mid) = cost(case), cost(f"compared: {case}")
        print(f"{case} / compared: {low / old_low:.2f} (min) {mid / old_mid:.2f} (median)")
    print()
    print("CPU time (user + system of the child, interpreter's subtracted), min / median ms:")
    cpu_base = (min(CPU["(interpreter)"]), statistics.median(CPU["(interpreter)"]))
    cpu = {name: ((min(CPU[name]) - cpu_base[0]) * 1000,
                  (statistics.median(CPU[name]) - cpu_base[1]) * 1000) for name in names[:-1]}
    for name in names[:-1]:
        print(f"  {name:27} {cpu[name][0]:8.1f} {cpu[name][1]:10.1f}")
    if "tweepy" in cpu:
        print(f"  bot core / tweepy: {cpu['bot core'][0] / cpu['tweepy'][0]:.2f} (min) "
              f"{cpu['bot core'][1] / cpu['tweepy'][1]:.2f} (median)")
    print(f"  bot core minus floor: {cpu['bot core'][0] - cpu['floor'][0]:.1f} ms (min) "
          f"{cpu['bot core'][1] - cpu['floor'][1]:.1f} ms (median)")
    for case in ("core + mastodon", "core + bluesky", "core + x"):
        print(f"  {case.split()[-1]} adapter adds {cpu[case][0] - cpu['bot core'][0]:.1f} ms (min) "
              f"{cpu[case][1] - cpu['bot core'][1]:.1f} ms (median)")
    for case in COMPARED if args.compare else ():
        old = cpu[f"compared: {case}"]
        print(f"  {case} / compared: {cpu[case][0] / old[0]:.2f} (min) "
              f"{cpu[case][1] / old[1]:.2f} (median)")
    print()
    print("heaviest imports of the bot core (one -X importtime run, cumulative ms):")
    for cumulative, name in heaviest(CORE, 12):
        print(f"  {cumulative / 1000:7.1f}  {name.strip()}")


if __name__ == "__main__":
    main()
