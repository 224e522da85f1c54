"""Imports point one way (DESIGN.md): no cycle between the sensor's packages, ``errors``
never imports the agent, the collector imports nothing of the sensor and the sensor
nothing of the collector (``spyglass serve``, in the CLI, is where the two meet).

Every ``import`` statement counts, at the top of a module or inside a function: an import
made late is still a dependency. A package is a directory under spyglass/ (``trace``,
``web``, …) or a module beside them (``agent``, ``config``, …); ``spyglass/__init__.py``,
the public API, is ``spyglass``.
"""
import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "spyglass")


def module_files():
    for directory, _, files in os.walk(ROOT):
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(directory, name)


def module_name(path):
    parts = os.path.relpath(path, os.path.dirname(ROOT))[:-3].split(os.sep)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path):
    """The spyglass modules ``path`` imports, each once."""
    name = module_name(path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    with open(path, encoding="utf-8") as source:
        tree = ast.parse(source.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            # "from . import web" imports a module; "from .web import x" the module web
            found.update([base] if node.module else [f"{base}.{a.name}" for a in node.names])
    return {target for target in found if target == "spyglass" or target.startswith("spyglass.")}


def package_of(name):
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "spyglass"


def dependencies():
    """package -> {package it imports: [(module, module imported), …]}"""
    found = {}
    for path in module_files():
        source = module_name(path)
        for target in imported(path):
            if package_of(source) != package_of(target):
                found.setdefault(package_of(source), {}).setdefault(package_of(target), []).append(
                    (source, target))
    return found


def cycles(graph):
    """The strongly connected groups of more than one package (Tarjan)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(set(graph) | {target for targets in graph.values() for target in targets}):
        if node not in index:
            visit(node)
    return groups


def test_the_walk_sees_the_imports_it_must():
    graph = dependencies()
    assert ("spyglass.web.asgi", "spyglass.agent") in graph["web"]["agent"]
    assert ("spyglass.trace.span", "spyglass.redact.stacktrace") in graph["trace"]["redact"]
    assert cycles({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}, "d": {"a": []}}) == [
        {"a", "b", "c"}]


def test_no_cycle_between_packages():
    graph = dependencies()
    found = cycles(graph)
    edges = [f"{a} -> {b}: {graph[a][b][:3]}" for group in found for a in group for b in group
             if b in graph.get(a, {})]
    assert found == [], "\n".join(edges)


@pytest.mark.parametrize("package, forbidden", [
    ("errors", "agent"),      # errors run below the agent: process.agent tells them which
    ("trace", "errors"),      # a span's exception event: redact.stacktrace
    ("agent", "instrument"),  # the bootstrap wires the two
])
def test_what_a_package_never_imports(package, forbidden):
    assert forbidden not in dependencies().get(package, {})


def test_the_collector_and_the_sensor_share_no_code():
    graph = dependencies()
    assert set(graph.get("collector", {})) == set()
    importers = {package for package, targets in graph.items() if "collector" in targets}
    assert importers <= {"cli"}
