"""Every environment variable the product reads is documented, and every variable the
configuration tables name is read (docs/configuration.md: "every environment variable").

An operator deploys from the documentation: a variable read but not documented is a setting
nobody can find; a documented one that nothing reads is a setting that silently does nothing.
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV_READERS = {"env_str", "env_bool", "env_int", "env_float", "env_list"}
# The product's modules that read the environment (settings, gunicorn's file, the metrics'
# multiprocess switch); tests/ and bench/ set variables of their own and are not the product.
SOURCES = [
    ROOT / "mssante" / "settings.py",
    ROOT / "gunicorn.conf.py",
    ROOT / "mssante" / "metrics.py",
    ROOT / "operations" / "metrics.py",
]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Names in the first column of configuration.md's tables that are not variables of ours.
NOT_VARIABLES = {"CELERY_BEAT_SCHEDULE"}


def _constant_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _reads(tree: ast.AST) -> set[str]:
    """Names passed to env_*() and os.environ.get()/os.environ[...]."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            on_environ = isinstance(func, ast.Attribute) and getattr(func.value, "attr", None) == "environ"
            if called in ENV_READERS or (on_environ and called == "get"):
                name = _constant_name(node.args[0])
                if name:
                    names.add(name)
        if isinstance(node, ast.Subscript) and getattr(node.value, "attr", None) == "environ":
            name = _constant_name(node.slice)
            if name:
                names.add(name)
    return names


def read_variables() -> set[str]:
    names = set()
    for path in SOURCES:
        names |= _reads(ast.parse(path.read_text(encoding="utf-8")))
    return {name for name in names if name != "DJANGO_SETTINGS_MODULE"}


def documented_names() -> set[str]:
    text = "\n".join(path.read_text(encoding="utf-8") for path in DOCS)
    names = set()
    for code in re.findall(r"`([^`\n]+)`", text):
        names.update(re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", code))
    return names


def configuration_table_names() -> set[str]:
    """The variables named in the first column of configuration.md's tables."""
    names = set()
    for line in (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    return names - NOT_VARIABLES


def test_the_collector_sees_every_kind_of_read():
    tree = ast.parse('env_int("A_B", 1)\nos.environ.get("C_D")\nos.environ["E_F"]\nenv_str(name)\n')
    assert _reads(tree) == {"A_B", "C_D", "E_F"}


def test_every_variable_read_is_documented():
    read = read_variables()
    assert len(read) > 150, "the collector lost the settings' reads"
    undocumented = sorted(read - documented_names())
    assert undocumented == [], f"read from the environment but documented nowhere in docs/ or README.md: {undocumented}"


def test_every_variable_of_the_configuration_tables_is_read():
    read = read_variables()
    # `NAME_FILE` is read by env_str("NAME") itself (mssante/env.py).
    not_read = sorted(
        name
        for name in configuration_table_names()
        if name not in read and not (name.endswith("_FILE") and name.removesuffix("_FILE") in read)
    )
    assert not_read == [], f"docs/configuration.md documents variables nothing reads: {not_read}"
