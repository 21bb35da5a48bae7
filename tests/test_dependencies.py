"""pyproject's ranges admit exactly what the locks pin (what the tests ran with)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def pins() -> dict[str, str]:
    """name -> version of the locks (runtime and development; `name==1.2 ; marker \\` lines)."""
    found = {}
    for lock in ("requirements.lock", "requirements-dev.lock"):
        for line in (ROOT / lock).read_text().splitlines():
            if "==" in line and not line.lstrip().startswith(("#", "--hash")):
                name, rest = line.split("==", 1)
                found[canonicalize_name(name.strip())] = rest.split(";")[0].split()[0]
    return found


def test_every_declared_dependency_is_pinned_inside_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    locked = pins()
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is not pinned in requirements.lock"
        assert requirement.specifier, f"{name} has no range in pyproject.toml"
        assert requirement.specifier.contains(locked[name]), (text, locked[name])
