"""The package's import structure: no import circles, no module imports another's private names, and every import
goes down the layers (a module imports its own layer or lower ones). Read from the source with `ast`, so that
imports inside functions count too."""

import ast
import collections
from pathlib import Path

from conftest import REPO_ROOT

SOURCE = REPO_ROOT / "src"
PACKAGE = "diffusers_glide"

# Lowest first. A top-level module or subpackage of diffusers_glide may import from its own layer and the ones
# before it, never from a later one.
LAYERS: list[set[str]] = [
    {"messages", "config_limits", "variants", "embedded", "vocabularies", "folder_lock"},
    {"image_files", "output_folders", "model_cards", "tokenization", "clip_tokenization"},
    {"models", "schedulers"},
    {"pipelines"},
    {"samplers"},
    {"conversion"},
    {"openai_checkpoints"},
    {"cascade"},
    {"shapes", "training", "batch_generation"},
    {"app"},
    {"commands", "cli", "__init__"},
]
LAYER_OF = {name: index for index, layer in enumerate(LAYERS) for name in layer}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in (SOURCE / PACKAGE).rglob("*.py"):
        parts = list(path.relative_to(SOURCE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imports(modules: dict[str, Path]) -> list[tuple[str, str, str | None, int]]:
    """(importing module, imported module, imported name or None, line) for every import within the package."""
    found = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != PACKAGE:
                    continue
                for alias in node.names:
                    submodule = f"{target}.{alias.name}"
                    if submodule in modules:
                        found.append((name, submodule, None, node.lineno))
                    else:
                        found.append((name, target, alias.name, node.lineno))
            elif isinstance(node, ast.Import):
                found.extend(
                    (name, alias.name, None, node.lineno)
                    for alias in node.names
                    if alias.name.split(".")[0] == PACKAGE
                )
    return found


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

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
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return components


MODULES = _modules()
IMPORTS = _imports(MODULES)


def test_the_analysis_sees_the_package():
    assert {"diffusers_glide.cascade", "diffusers_glide.cli", "diffusers_glide.pipelines.pipeline_glide"} <= set(
        MODULES
    )
    assert ("diffusers_glide.commands.generate", "diffusers_glide.cascade") in {(a, b) for a, b, _, _ in IMPORTS}


def test_no_import_circles():
    graph = collections.defaultdict(set)
    for importer, imported, _, _ in IMPORTS:
        if imported in MODULES and imported != importer:
            graph[importer].add(imported)
    assert _cycles(graph) == []


def test_a_circle_is_found():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_private_names_of_another():
    private = [
        f"{MODULES[importer].relative_to(REPO_ROOT)}:{line} imports {name} from {imported}"
        for importer, imported, name, line in IMPORTS
        if name is not None and name.startswith("_") and not name.startswith("__")
    ]
    assert private == []


def test_every_module_has_a_layer():
    assert sorted({_top(name) for name in MODULES} - set(LAYER_OF)) == []


def test_imports_go_down_the_layers():
    upward = [
        f"{MODULES[importer].relative_to(REPO_ROOT)}:{line} ({_top(importer)}, layer {LAYER_OF[_top(importer)]}) "
        f"imports {imported} ({_top(imported)}, layer {LAYER_OF[_top(imported)]})"
        for importer, imported, _, line in IMPORTS
        if LAYER_OF[_top(imported)] > LAYER_OF[_top(importer)]
    ]
    assert upward == []
