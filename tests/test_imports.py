"""Imports in src/ go one way: no module imports one of a higher layer, there is no cycle, and
modules of the project are imported at the top of a file (lazy imports are for heavy optional
packages only: tensorboard, sklearn, submitit, ...)."""
import ast
from pathlib import Path

from conftest import ROOT

SRC = ROOT / "src"

# Lower layers first; a module may import its own layer's and lower ones.
LAYERS = [
    {"errors", "families", "io_utils", "cache_file", "evaluate", "runtime", "sampler", "sequences", "signals"},      # leaves
    {"storage", "features_cache"},   # the storage layouts, the cache
    {"data"},
    {"models"},                  # the package: registry, base, blocks, one file per family
    {"steps"},                   # the trainer's step, epoch and validation loss (one for every model)
    {"args", "recipes", "published"},
    {"runs", "synthetic", "reproduce", "extraction"},
    {"train"},
    {"two_stage"},
    {"compose", "plots"},
]
RANK = {m: i for i, layer in enumerate(LAYERS) for m in layer}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def imports(path: Path):
    """(imported src module, line, at top level?) of one file, TYPE_CHECKING blocks left out."""
    tree = ast.parse(path.read_text())
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            if name == "src" or name.startswith("src."):
                yield name, node.lineno, id(node) in top


def src_files():
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def existing(name: str):
    """The src module a dotted name refers to (a name imported from a module is that module)."""
    while name and not ((ROOT / name.replace(".", "/")).with_suffix(".py").is_file()
                        or (ROOT / name.replace(".", "/") / "__init__.py").is_file()):
        name = name.rpartition(".")[0]
    return name


def layer_of(name: str) -> str:
    return name.split(".")[1] if name.count(".") >= 1 else name


def test_every_module_has_a_layer():
    missing = {layer_of(module_name(p)) for p in src_files() if module_name(p) != "src"} - set(RANK)
    assert not missing, f"add {missing} to LAYERS"


def test_no_upward_import_and_no_lazy_project_import():
    bad = []
    for path in src_files():
        me = module_name(path)
        for name, line, at_top in imports(path):
            target = existing(name)
            if not target or target == "src":
                continue
            if RANK[layer_of(target)] > RANK[layer_of(me)]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target} from a higher layer")
            if not at_top:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target} inside a function")
    assert not bad, "\n".join(bad)


def test_no_import_cycle_between_modules():
    graph = {}
    for path in src_files():
        me = module_name(path)
        graph[me] = {existing(n) for n, _, _ in imports(path)} - {"", "src", me}
    # a package's __init__ importing its own submodules is how registration works, not a cycle
    for pkg in [m for m in graph if (ROOT / m.replace(".", "/") / "__init__.py").is_file()]:
        graph[pkg] = {t for t in graph[pkg] if not t.startswith(pkg + ".")}
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


# Not a model: f-VAEGAN-D2's trainer callback (its registry entry's `callbacks`, the original's
# test-set selection) scores an epoch with the metrics and writes its file, as a callback does.
CALLBACK_IMPORTS = {"fvaegan_selection.py": ("evaluate", "io_utils")}


def test_the_model_files_import_nothing_above_them():
    """A model never reaches for the trainer, the evaluation or the data: they are handed to it."""
    for path in (SRC / "models").glob("*.py"):
        allowed = ("models", "families", "errors", "sequences", *CALLBACK_IMPORTS.get(path.name, ()))
        for name, line, _ in imports(path):
            assert layer_of(existing(name)) in allowed, f"{path.name}:{line} imports {name}"
