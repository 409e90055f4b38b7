"""The domain knows nothing of Dagster or HTTP, and dependencies go one way: karet_api → karet_defs."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PURE = ["config", "expr", "engine", "store", "query", "dashboards", "history"]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", PURE)
def test_domain_imports_neither_dagster_nor_http(package):
    files = sorted((ROOT / "karet_defs" / package).rglob("*.py"))
    assert files
    offenders = {
        str(f.relative_to(ROOT)): sorted(_imports(f) & {"dagster", "fastapi", "starlette", "uvicorn"})
        for f in files
    }
    assert {f: i for f, i in offenders.items() if i} == {}


def test_defs_never_import_the_api():
    offenders = [
        str(f.relative_to(ROOT)) for f in (ROOT / "karet_defs").rglob("*.py") if "karet_api" in _imports(f)
    ]
    assert offenders == []
