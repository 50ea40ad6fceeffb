"""Services never import each other.

Every module under `src/orderproc` is parsed (ast, nothing is imported) and each of its imports,
at any depth (inside functions too, relative ones resolved), is checked:

- a service (`users`, `inventory`, `orders`, `webui`) imports only itself, `common` and
  `errors`: never another service, the gateway, or a composition root (`orderproc.runtime`,
  `orderproc.cli`). What two services both need (asset id and username rules, categories, the
  price port) lives once in `orderproc.common`.
- `common` and `errors` import no service, no gateway and no composition root: they are what
  the services stand on.
- The composition roots may import the services: `orderproc.gateway` (the embedded app, which
  composes every service's parts in one process, and the edge in front of them), the
  top-level `orderproc.runtime` (the embedded runtime it builds) and `orderproc.cli` (which
  starts a service's app factory). `orderproc.deploy` renders the gateway's routing table.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "orderproc"
SERVICES = frozenset({"users", "inventory", "orders", "webui"})
SHARED = frozenset({"common", "errors"})
ROOTS = frozenset({"gateway", "runtime", "cli"})


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(source: str, module: str, *, is_package: bool) -> list[tuple[int, str]]:
    """(line, imported module) for every import in `source`; `from x import y` also yields
    `x.y`, since `y` may be a module."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                drop = node.level - 1 if is_package else node.level
                base = base[: len(base) - drop] if drop else base
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
    return found


def _area(module: str) -> str | None:
    """The top-level part of orderproc a module belongs to (`orderproc.users.api` → `users`)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "orderproc" and len(parts) > 1 else None


def crossings(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """What `module` (with `source`) imports that its place in the layout forbids."""
    own = _area(module)
    if own not in SERVICES | SHARED:
        return []  # a composition root, deploy, testing helpers, the package itself
    forbidden = (SERVICES - {own}) | ROOTS if own in SERVICES else SERVICES | ROOTS
    bad = []
    for line, target in _imports(source, module, is_package=is_package):
        area = _area(target)
        if area in forbidden:
            bad.append(f"{module}:{line} imports {target}")
    return sorted(set(bad))


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_layout_has_the_parts_this_test_knows() -> None:
    areas = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert SERVICES | SHARED | {"gateway"} <= areas
    unknown = areas - SERVICES - SHARED - {"gateway", "deploy"}
    assert not unknown, f"say in this test whether {sorted(unknown)} is a service or a root"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: _module_name(p))
def test_no_service_imports_another(path: Path) -> None:
    found = crossings(path.read_text(), _module_name(path), is_package=path.name == "__init__.py")
    assert not found, "services never import each other (move shared words to common):\n" + (
        "\n".join(found)
    )


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("orderproc.orders.api", "from orderproc.inventory.domain import normalize_asset_id"),
        ("orderproc.orders.api", "from orderproc import inventory"),
        ("orderproc.orders.api", "from ..inventory import domain"),
        ("orderproc.webui.views.trade", "def f():\n    import orderproc.orders.service"),
        ("orderproc.users.service", "from orderproc.runtime import Runtime"),
        ("orderproc.common.prices", "from orderproc.inventory.service import Catalog"),
        ("orderproc.inventory.api", "from orderproc.gateway.routes import ROUTES"),
    ],
)
def test_a_crossing_is_found(module: str, source: str) -> None:
    assert crossings(source, module)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("orderproc.orders.api", "from orderproc.common.vocabulary import normalize_asset_id"),
        ("orderproc.orders.api", "from . import service"),
        ("orderproc.orders.api", "from orderproc.orders import portfolio"),
        ("orderproc.gateway.app", "from orderproc.users.app import create_app"),
        ("orderproc.runtime", "from orderproc.inventory.app import build_inventory"),
    ],
)
def test_what_is_allowed_passes(module: str, source: str) -> None:
    assert crossings(source, module) == []
