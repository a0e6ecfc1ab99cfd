"""The house's layering (DESIGN.md, "Layers of the house"), read from the sources with ast:
every import, at the top of a module or inside a function, is an edge of the module graph.
Lower layers never import higher ones, no two modules import each other (through any
circle), and only training/recipes.py of the training and technique code names models."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "minicnn"

# Bottom to top; a module may import its own layer and the ones below.
LAYERS = [("backend",), ("autograd",), ("gradcheck",), ("ops",), ("nn",), ("data", "io"),
          ("models",), ("training",), ("techniques",), ("homework",), ("bench",), ("plot",),
          ("explore",), ("gallery",),
          ("cli", "__main__", "__init__")]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}

# Tensor's operators (x + y, x @ w, x.sum()) are the ops: autograd reaches them through one
# lazy lookup (autograd._ops), the single edge that points up.
ALLOWED_UP = {("minicnn.autograd", "minicnn.ops")}


def modules():
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def import_graph():
    """{module: {modules it imports}} over minicnn's own modules, function-level imports too."""
    mods = modules()

    def resolve(name):
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None
    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package
                    for _ in range(node.level - 1):
                        up = up.rpartition(".")[0]
                    base = up + ("." + base if base else "")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            else:
                continue
            edges |= {t for t in map(resolve, targets) if t and t != name}
        graph[name] = edges
    return graph


def circles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if (v, w) in ALLOWED_UP:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in graph:
        if v not in index:
            visit(v)
    return out


def layer(module):
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    assert "minicnn.ops" in graph["minicnn.autograd"]          # the lazy one inside _ops()
    assert "minicnn.training.loop" in graph["minicnn.techniques.adv_training"]


def test_no_import_circles():
    assert circles(import_graph()) == []


def test_a_circle_is_found_when_there_is_one():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"minicnn.autograd": {"minicnn.ops"}, "minicnn.ops": {"minicnn.autograd"}}) \
        == []                                   # the one allowed upward edge is not a circle


def test_the_gallery_runs_sections_it_imports_at_the_top():
    graph = import_graph()
    assert "minicnn.gallery.sections" in graph["minicnn.gallery.core"]
    assert "minicnn.gallery.figure" in graph["minicnn.gallery.sections._common"]
    assert "minicnn.gallery.core" not in set().union(
        *(edges for m, edges in graph.items() if m.startswith("minicnn.gallery.sections")))


def test_lower_layers_never_import_higher_ones():
    wrong = sorted((a, b) for a, edges in import_graph().items() for b in edges
                   if (a, b) not in ALLOWED_UP and b != "minicnn"      # `import minicnn as mc`
                   and RANK[layer(b)] > RANK[layer(a)])
    assert wrong == []


def test_only_the_recipes_name_shipped_models():
    graph = import_graph()
    naming = sorted(a for a, edges in graph.items()
                    if (a.startswith("minicnn.techniques") or a.startswith("minicnn.training"))
                    and any(b.startswith("minicnn.models") for b in edges))
    assert naming == ["minicnn.training.recipes"]


def test_the_package_root_keeps_only_the_engine_core():
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert root == ["__init__.py", "__main__.py", "autograd.py", "backend.py", "cli.py",
                    "gradcheck.py"]
