"""No import cycle between apps (issue 13; HELPERS.md "Layering", docs/architecture.md).

Every import of the product's code is read — at the top of a module or inside a function — and
each app may import only the apps of the layers below its own; within a layer, the imports
between apps must not form a cycle. `mssante/` is project plumbing (settings, URLs, the Celery
app): it is left out of the order.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The order of docs/architecture.md, lowest first: an app imports only apps of a lower layer,
# or of its own layer without a cycle.
LAYERS = [
    ["accounts", "audit"],
    ["mailboxes"],
    ["patients", "health_record"],
    ["directory"],
    ["webmail", "automation"],
    ["api", "clients", "operations"],
]
LAYER_OF = {app: index for index, apps in enumerate(LAYERS) for app in apps}


def imported_apps(path: Path) -> set[tuple[str, int]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {(name.split(".")[0], node.lineno) for name in names if name.split(".")[0] in LAYER_OF}
    return found


def app_imports() -> dict[str, dict[str, list[str]]]:
    """app → imported app → the places (path:line) that import it."""
    graph: dict[str, dict[str, list[str]]] = {app: {} for app in LAYER_OF}
    for app in LAYER_OF:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for target, line in imported_apps(path):
                if target != app:
                    graph[app].setdefault(target, []).append(f"{path.relative_to(ROOT)}:{line}")
    return graph


def test_every_app_of_the_project_has_a_layer():
    apps = {p.parent.name for p in ROOT.glob("*/apps.py")}
    assert apps == set(LAYER_OF)


def test_an_app_imports_only_apps_of_its_layer_or_below():
    upward = [
        f"{app} → {target}: {', '.join(places)}"
        for app, targets in app_imports().items()
        for target, places in targets.items()
        if LAYER_OF[target] > LAYER_OF[app]
    ]
    assert upward == []


def test_no_cycle_between_the_apps_of_a_layer():
    graph = app_imports()
    for apps in LAYERS:
        # Kahn's algorithm on the imports inside the layer: what is left over is on a cycle.
        edges = {app: {t for t in graph[app] if t in apps} for app in apps}
        left = set(apps)
        while True:
            free = {app for app in left if not edges[app] & left}
            if not free:
                break
            left -= free
        cycle = {app: {t: graph[app][t][0] for t in edges[app] & left} for app in sorted(left)}
        assert cycle == {}, f"import cycle in the layer {apps}"
