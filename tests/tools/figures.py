"""Code figures for notes: function length per package and the import graph between packages.

Run as `python -m tests.tools.figures` from the repository root.
"""

from __future__ import annotations

import ast
import statistics
import sys
from collections import defaultdict
from pathlib import Path

PACKAGES = ("bot", "cogs", "storage", "tests")
RANK = {"storage": 0, "bot": 1, "cogs": 2}  # imports may only go to an equal or lower rank


def modules(root: Path, package: str) -> list[Path]:
    """The package's Python files (fakes and bench included for tests)."""
    return sorted((root / package).rglob("*.py"))


def function_lengths(path: Path) -> list[int]:
    """Line count of every function and method in a file."""
    tree = ast.parse(path.read_text())
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    return [n.end_lineno - n.lineno + 1 for n in ast.walk(tree) if isinstance(n, kinds)]


def imported_packages(path: Path) -> set[str]:
    """Top-level packages of the repository that a file imports (at any level)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found & set(PACKAGES)


def percentile(values: list[int], q: float) -> int:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(root: Path) -> None:
    """Print the figures."""
    print("package   functions  median  p90  max")
    graph: dict[str, set[str]] = defaultdict(set)
    for package in PACKAGES:
        lengths = [n for p in modules(root, package) for n in function_lengths(p)]
        for path in modules(root, package):
            graph[package] |= imported_packages(path) - {package}
        print(
            f"{package:<9} {len(lengths):>9}  {statistics.median(lengths):>6}"
            f"  {percentile(lengths, 0.9):>3}  {max(lengths):>3}"
        )
    for package in PACKAGES:
        print(f"{package} -> {', '.join(sorted(graph[package])) or '(nothing)'}")
    for path in (p for package in PACKAGES[:3] for p in modules(root, package)):
        rel = path.relative_to(root).as_posix()
        own = rel.split("/")[0]
        for target in sorted(imported_packages(path) - {own}):
            if RANK.get(target, -1) > RANK[own]:
                print(f"upward: {rel} -> {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd())
