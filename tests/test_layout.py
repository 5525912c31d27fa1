"""The package's shape: no import circle, no adapter in the core, no overlong module.

Read from the source with ``ast`` (nothing is imported): module-level imports
make the graph; imports under ``if TYPE_CHECKING:`` and inside functions (lazy
imports) are left out, since neither runs when the module is imported.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "omnichannel"
MAX_LINES = 500
REASON = "Long because:"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module runs: not in functions, classes or TYPE_CHECKING."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _module_level_imports(node.body)
            yield from _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _module_level_imports(block)
            for handler in node.handlers:
                yield from _module_level_imports(handler.body)
        elif isinstance(node, ast.With):
            yield from _module_level_imports(node.body)


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute name a ``from ... import`` reads from."""
    if not node.level:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")
    base = base if is_package else base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    source = _resolve(module, node)
    yield source
    for alias in node.names:  # ``from . import _logging`` imports a module
        if f"{source}.{alias.name}" in MODULES:
            yield f"{source}.{alias.name}"


def import_graph() -> dict[str, set[str]]:
    """Each module of the package, and the package modules it imports at module level."""
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[module] = {
            target
            for node in _module_level_imports(tree.body)
            for target in _targets(module, node)
            if target in MODULES and target != module
        }
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Return one import circle as a path of module names, or ``None``."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for target in sorted(graph[node]):
            if target in on_path:
                return [*path[path.index(target):], target]
            if target not in done:
                found = visit(target)
                if found is not None:
                    return found
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for node in sorted(graph):
        if node not in done:
            found = visit(node)
            if found is not None:
                return found
    return None


def test_the_cycle_finder_finds_a_circle_and_passes_a_tree() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_relative_and_submodule_imports_but_not_type_checking_ones() -> None:
    graph = import_graph()
    assert "omnichannel.routing" in graph["omnichannel.hub"]
    assert "omnichannel._logging" in graph["omnichannel.hub"]  # ``from . import _logging``
    assert "omnichannel.bot" in graph["omnichannel.cli"]  # ``from ..bot import Bot``
    assert "omnichannel.hub" not in graph["omnichannel.context"]  # TYPE_CHECKING only


def test_the_package_has_no_import_circle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def _adapter_packages() -> set[str]:
    root = SRC.parent / "adapters"
    return {path.name for path in root.glob("*/src/*") if path.is_dir()}


_DYNAMIC_IMPORTS = {"import_module", "__import__"}


def _imported_names(tree: ast.AST) -> Iterator[str]:
    """Absolute names imported anywhere in ``tree``: statements, and literal dynamic imports.

    ``importlib.import_module("x")`` and ``__import__("x")`` with a literal name
    count; a name computed at run time (an entry point's module) cannot be read.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            yield node.module or ""
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if (name in _DYNAMIC_IMPORTS and isinstance(first, ast.Constant)
                    and isinstance(first.value, str) and not first.value.startswith(".")):
                yield first.value


def test_the_import_reader_sees_lazy_and_literal_dynamic_imports() -> None:
    source = (
        "import a.b\nfrom c import d\nfrom . import e\n"
        "def f():\n    import g\n    importlib.import_module('h.i')\n"
        "    __import__('j')\n    import_module(name)\n    import_module('.k', 'p')\n"
    )
    assert sorted(_imported_names(ast.parse(source))) == ["a.b", "c", "g", "h.i", "j"]


def test_no_core_module_imports_an_adapter() -> None:
    adapters = _adapter_packages()
    assert {"omnichannel_mastodon", "omnichannel_bluesky"} <= adapters
    offenders = [
        f"{module} imports {name}"
        for module, path in MODULES.items()
        for name in _imported_names(ast.parse(path.read_text(encoding="utf-8")))
        if name.split(".")[0] in adapters or name.startswith("omnichannel_")
    ]
    assert offenders == []


def _gives_a_reason(docstring: str) -> bool:
    """Whether ``docstring`` has ``Long because:`` followed by a reason (a few words)."""
    _, marker, reason = docstring.partition(REASON)
    return bool(marker) and len(reason.split()) >= 3


def test_a_long_module_needs_the_marker_and_words_after_it() -> None:
    assert _gives_a_reason("Stores.\n\nLong because: one class implements every method.")
    assert not _gives_a_reason("Stores.\n\nLong because:")
    assert not _gives_a_reason("Stores, at length.")


def test_every_long_module_says_why_at_its_top() -> None:
    unexplained = []
    for path in MODULES.values():
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_LINES and not _gives_a_reason(ast.get_docstring(ast.parse(text)) or ""):
            unexplained.append(f"{path.relative_to(SRC)} ({lines} lines)")
    assert unexplained == [], (
        f"over {MAX_LINES} lines: split each, or write {REASON!r} and the reason in its "
        f"docstring: {', '.join(unexplained)}"
    )


def _every_import(module: str) -> set[str]:
    """Package modules ``module`` imports anywhere: lazily or for typing too."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    return {
        target
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for target in _targets(module, node)
        if target in MODULES
    }


def test_the_webhook_app_knows_the_hub_only_through_its_protocol() -> None:
    assert "omnichannel.hub" not in _every_import("omnichannel.webhooks")
    assert "omnichannel.webhooks" in import_graph()["omnichannel.hub"]
