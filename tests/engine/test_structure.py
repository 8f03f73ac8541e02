"""The structure of the code, kept true by reading it (stdlib ``ast``, nothing is imported).

The rules (DESIGN.md, house style 2, 10 and the parts' boundaries):

1. No import cycle among the modules of ``engine/``. Every import statement counts, wherever it
   is: at module level, inside a function, under ``if TYPE_CHECKING:`` (an import moved into a
   function cannot dodge a cycle). ``from engine.a import b`` is an edge to ``engine.a.b`` when
   that is a module, else to ``engine.a``; ``import engine.a.b`` is an edge to ``engine.a.b``.
   The package ``__init__`` that Python runs before a submodule is not an edge (a package
   importing its own submodules is not a cycle).
2. No module of ``engine/`` or ``console/`` reads another object's private attribute:
   ``x._name`` is allowed only on ``self``, ``cls`` and ``super()`` (dunders like ``__name__``
   are not private). One exception: Django's documented model API ``_meta``. A module's own
   private names (``_helper``) are plain names, not attribute reads, so they are free.
3. ``engine/`` imports nothing from Django or ``console``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED_PRIVATE = {"_meta"}  # Django's Model._meta: documented public API despite the name
OWN = {"self", "cls"}


def modules(package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``package`` (a folder under ROOT)."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported(module: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in the file, resolved as rule 1 says."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield (candidate if candidate in known else base), node.lineno


def import_graph(package: str) -> dict[str, set[str]]:
    found = modules(package)
    known = set(found)
    return {
        name: {target for target, _ in imported(name, path, known) if target in known}
        for name, path in found.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def private_reads(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.startswith("__") or name in ALLOWED_PRIVATE:
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in OWN:
            continue
        if (
            isinstance(owner, ast.Call)
            and isinstance(owner.func, ast.Name)
            and owner.func.id == "super"
        ):
            continue
        yield f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}"


def test_the_engine_has_no_import_cycle() -> None:
    graph = import_graph("engine")
    assert len(graph) > 20  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in engine/: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_reads_another_objects_private_attributes() -> None:
    found = [
        read
        for package in ("engine", "console")
        for path in modules(package).values()
        for read in private_reads(path)
    ]
    assert found == [], "private attributes read across objects:\n" + "\n".join(found)


def test_the_engine_imports_nothing_from_django_or_the_console() -> None:
    found = modules("engine")
    known = set(found)
    bad = [
        f"{path.relative_to(ROOT)}:{line}: imports {target}"
        for name, path in found.items()
        for target, line in imported(name, path, known)
        if target.split(".")[0] in ("django", "console")
    ]
    assert bad == []
