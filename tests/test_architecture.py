"""The layers, read from the source: imports go one way (cogs → bot → storage), job states
are named once, cogs reach the database only through the engine."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from storage import sql
from storage.states import FINAL, UNFINISHED, JobState, sql_in

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"storage": 0, "bot": 1, "cogs": 2}
# The composition root: `python -m bot` and the run it starts wire every layer together.
COMPOSITION_ROOT = {"bot/__main__.py", "bot/runner.py"}
STATE_LITERAL = re.compile("'(" + "|".join(s.value for s in JobState) + ")'")


def sources(*packages: str) -> list[Path]:
    """The Python files of the application packages."""
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in a file, including those inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def upward_imports(path: Path, root: Path = ROOT) -> list[str]:
    """Imports of a higher layer than the file's own."""
    rel = path.relative_to(root).as_posix()
    own = LAYERS[rel.split("/")[0]]
    return [
        f"{rel}:{line} imports {module}"
        for line, module in imports(path)
        if LAYERS.get(module.split(".")[0], -1) > own
    ]


def test_imports_go_one_way() -> None:
    upward = [u for p in sources(*LAYERS) for u in upward_imports(p)]
    allowed = [u for u in upward if u.split(":")[0] in COMPOSITION_ROOT]
    assert sorted(set(upward) - set(allowed)) == []


def test_the_import_check_sees_an_upward_import(tmp_path: Path) -> None:
    (tmp_path / "storage").mkdir()
    bad = tmp_path / "storage" / "probe.py"
    bad.write_text("import json\n\n\ndef f():\n    from bot.errors import QuotaError\n")
    assert upward_imports(bad, tmp_path) == ["storage/probe.py:5 imports bot.errors"]


def test_storage_speaks_no_user_text() -> None:
    """Refusals are storage's own kinds; the engine words them."""
    for path in sources("storage"):
        assert all(not m.startswith("bot") for _, m in imports(path)), path


def string_constants(path: Path) -> list[tuple[int, str]]:
    """Every string constant of a file (f-string parts included), with its line."""
    tree = ast.parse(path.read_text())
    return [
        (n.lineno, n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def test_job_states_are_spelled_only_in_the_enum() -> None:
    """No `'queued'` in SQL text, no `job.state == "queued"` in Python."""
    found = []
    for path in sources(*LAYERS):
        if path.name == "states.py":
            continue
        for line, text in string_constants(path):
            if STATE_LITERAL.search(text):
                found.append(f"{path.relative_to(ROOT)}:{line}")
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and _compares_state_to_literal(node):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def _compares_state_to_literal(node: ast.Compare) -> bool:
    """`x.state == "..."` or `x.state in ("...", ...)`."""
    names = {s.value for s in JobState}
    sides = [node.left, *node.comparators]
    is_state = any(isinstance(s, ast.Attribute) and s.attr == "state" for s in sides)
    literals = [c.value for s in sides for c in ast.walk(s) if isinstance(c, ast.Constant)]
    return is_state and any(v in names for v in literals)


def test_sql_in_lists_come_from_the_sets() -> None:
    assert f"state IN {sql_in(UNFINISHED)}" in sql.COUNT_USER_UNFINISHED
    assert set(UNFINISHED).isdisjoint(FINAL) and set(UNFINISHED) | set(FINAL) == set(JobState)
    with pytest.raises(ValueError):
        sql_in(["queued'; DROP TABLE jobs; --"])  # type: ignore[list-item]


def test_job_columns_are_declared_once() -> None:
    """The row type gives the column list and the INSERT; a migration adds the column."""
    from dataclasses import fields

    from storage.rows import Job, NewJob

    assert sql.JOB_COLUMNS.split(", ") == [f.name for f in fields(Job)]
    for f in fields(NewJob):
        assert f":{f.name}" in sql.INSERT_JOB


def store_imports(path: Path) -> list[str]:
    """Names a file imports from storage that are stores or SQL (row and value types are fine)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("storage"):
            found += [
                f"{path.name}:{node.lineno} {node.module}.{a.name}"
                for a in node.names
                if a.name.endswith(("Store", "Database")) or a.name in ("Credits", "sql", "db")
            ]
    return found


def test_cogs_reach_the_database_only_through_the_engine() -> None:
    """No cog imports a store or reads `engine.store`, `engine.credits`, `engine.moderation`."""
    found = []
    for path in sources("cogs"):
        found += store_imports(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("store", "credits", "moderation")
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "engine"
            ):
                found.append(f"{path.name}:{node.lineno} engine.{node.attr}")
    assert found == []


# The model table: videos and speech in bot/models.py, stills in bot/stills.py, the gateways'
# models in the provider catalog.
MODEL_TABLE = {"bot/models.py", "bot/stills.py", "bot/providers/catalog.py"}


def test_model_names_live_only_in_the_model_table() -> None:
    from bot.models import priced_names
    from bot.providers.catalog import CATALOG

    known = {*priced_names(), *(rules.name for rules in CATALOG.values())}
    names = re.compile("|".join(re.escape(m) for m in sorted(known, key=len, reverse=True)))
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sources(*LAYERS)
        if path.relative_to(ROOT).as_posix() not in MODEL_TABLE
        for line, text in string_constants(path)
        if names.search(text)
    ]
    assert found == []
