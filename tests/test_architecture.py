"""The shape of the code, checked: phases meet only through contracts, no module reaches into another.

These read the source (ast), so a change that tangles the structure fails
here, next to a message naming the file and the line.
"""

import ast

import pytest

from tests.helpers import PROJECT_ROOT

PHASES = ("src.extract", "src.transform", "src.load")
CODE_FOLDERS = ("src", "scripts", "utils", "config", "tests")
SIZED_FOLDERS = ("src", "scripts", "utils", "config", "tests")
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
# Packages and what of the project each may import (besides the standard library and third parties).
ALLOWED_IMPORTS = {
    "src.contracts": ("src.contracts", "src.errors"),
    "src.storage": ("src.storage", "src.contracts.layout", "src.errors", "src.faultpoints"),
    "src.sources": ("src.sources", "src.contracts", "src.errors", "src.faultpoints", "src.redact", "src.text"),
}
PROJECT_PACKAGES = ("src", "utils", "tests", "config", "scripts")


def _modules(folders):
    for folder in folders:
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            if ".venv" not in path.parts:
                yield path


def _module_name(path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree):
    """(line, imported module, imported name or None) for every import of a project module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                yield node.lineno, node.module, alias.name


def _is_project(module) -> bool:
    return module.split(".")[0] in PROJECT_PACKAGES


def _within(module, package) -> bool:
    return module == package or module.startswith(package + ".")


def _private(name) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_module_imports_another_modules_underscore_names():
    found = []
    for path in _modules(CODE_FOLDERS):
        tree = ast.parse(path.read_text(), str(path))
        aliases = {}
        for line, module, name in _imports(tree):
            if not _is_project(module):
                continue
            if name is not None and _private(name) and module != _module_name(path):
                found.append(f"{path.relative_to(PROJECT_ROOT)}:{line} imports {name} from {module}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if _is_project(alias.name):
                        aliases[alias.asname or alias.name] = alias.name
            elif isinstance(node, ast.ImportFrom) and node.module and _is_project(node.module):
                for alias in node.names:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and _private(node.attr):
                if node.value.id in aliases:
                    found.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert found == []


def test_no_phase_imports_another_phase():
    found = []
    for path in _modules(["src"]):
        own = _module_name(path)
        phase = next((p for p in PHASES if _within(own, p)), None)
        if phase is None:
            continue
        for line, module, _ in _imports(ast.parse(path.read_text())):
            if any(_within(module, other) for other in PHASES if other != phase) or _within(module, "src.runner"):
                found.append(f"{path.relative_to(PROJECT_ROOT)}:{line} imports {module}")
    assert found == []


@pytest.mark.parametrize("package", sorted(ALLOWED_IMPORTS))
def test_contracts_storage_and_sources_depend_on_nothing_above_them(package):
    found = []
    for path in _modules(["src"]):
        if not _within(_module_name(path), package):
            continue
        for line, module, _ in _imports(ast.parse(path.read_text())):
            if _is_project(module) and not any(_within(module, ok) for ok in ALLOWED_IMPORTS[package]):
                found.append(f"{path.relative_to(PROJECT_ROOT)}:{line} imports {module}")
    assert found == []


def test_modules_and_functions_stay_small():
    found = []
    for path in _modules(SIZED_FOLDERS):
        text = path.read_text()
        where = path.relative_to(PROJECT_ROOT)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            found.append(f"{where}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{where}:{node.lineno} {node.name} is {length} lines")
    assert found == []


def test_scripts_are_thin():
    """A script parses nothing itself: it puts the project on the path and calls one main of src.commands."""
    for path in sorted((PROJECT_ROOT / "scripts").glob("*.py")):
        imports = [module for _, module, _ in _imports(ast.parse(path.read_text())) if _is_project(module)]
        assert len(imports) == 1 and imports[0].startswith("src.commands."), path.name
