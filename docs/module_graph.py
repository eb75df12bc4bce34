"""Draws docs/modules.md from the code's own imports: the module graph as a Mermaid
chart (GitHub renders it), one box per package, and the layer rules it must keep.

    python docs/module_graph.py            # rewrite docs/modules.md
    python docs/module_graph.py --check    # exit 1 when docs/modules.md is stale

tests/test_module_graph.py runs the check and the rules (no cycle; commands on top;
stages import no command; nothing imports up a layer).
"""
import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "siamese_graph")
OUT = os.path.join(ROOT, "docs", "modules.md")
# Layers, top to bottom: a module may import its own layer's modules or lower ones.
LAYERS = [
    ("commands", ["align", "make_records", "inspect_pairs", "train", "evaluate", "score", "gallery", "embed",
                  "export", "data_service", "launch", "common_flags", "train_flags"]),
    ("api", ["api"]),
    ("serving", ["serving"]),
    ("training", ["training"]),
    ("inference", ["inference"]),
    ("model", ["model"]),
    ("faces", ["faces"]),
    ("data", ["data"]),
    ("base", ["errors", "fileio", "progress", "netns"]),
]


def modules():
    """{dotted name relative to siamese_graph: path} of every module."""
    out = {}
    for d, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(d, f), PACKAGE)[:-3].replace(os.sep, ".")
                out[rel[:-len("__init__")].rstrip(".") if rel.endswith("__init__") else rel] = os.path.join(d, f)
    return {k: v for k, v in out.items() if k not in ("", "__init__")}


def imports(mods):
    """{module: sorted modules of the project it imports (anywhere in the file)}."""
    edges = {}
    for name, path in mods.items():
        found = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("siamese_graph"):
                base = node.module[len("siamese_graph"):].lstrip(".")
                for a in node.names:
                    full = (base + "." + a.name).lstrip(".")
                    if full in mods:
                        found.add(full)
                    elif base in mods:
                        found.add(base)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("siamese_graph.") and a.name[len("siamese_graph."):] in mods:
                        found.add(a.name[len("siamese_graph."):])
        edges[name] = sorted(found - {name})
    return edges


def layer_of(module):
    head = module.split(".")[0]
    for k, (_, members) in enumerate(LAYERS):
        if head in members:
            return k
    raise ValueError("%s: in no layer of docs/module_graph.py" % module)


def problems(edges):
    """What breaks the rules: cycles, and imports that point up a layer."""
    out = []
    for a, bs in edges.items():
        for b in bs:
            if layer_of(b) < layer_of(a):
                out.append("%s imports %s, a layer above it" % (a, b))
    state = {}

    def visit(n, path):
        state[n] = 1
        for m in edges.get(n, []):
            if state.get(m) == 1:
                out.append("cycle: %s" % " -> ".join(path[path.index(m):] + [m]))
            elif not state.get(m):
                visit(m, path + [m])
        state[n] = 2

    for n in sorted(edges):
        if not state.get(n):
            visit(n, [n])
    return out


def render(edges, mods):
    lines = ["# The module graph", "",
             "Drawn from the imports by `python docs/module_graph.py` (do not edit by hand;",
             "`tests/test_module_graph.py` fails when it is stale). Layers, top to bottom:",
             "a module imports only its own layer or the ones below. %d modules, %d imports."
             % (len(mods), sum(len(v) for v in edges.values())), "",
             "```mermaid", "flowchart TB"]
    node = lambda m: m.replace(".", "_")
    for title, members in LAYERS:
        inside = sorted(m for m in mods if m.split(".")[0] in members)
        lines.append("  subgraph %s" % title)
        lines += ["    %s[%s]" % (node(m), m) for m in inside]
        lines.append("  end")
    for a in sorted(edges):
        lines += ["  %s --> %s" % (node(a), node(b)) for b in edges[a]]
    # imports only (no line counts): the page is stale when the structure changes, not an edit
    lines += ["```", "", "| module | imports |", "|---|---|"]
    for m in sorted(mods, key=lambda m: (layer_of(m), m)):
        lines.append("| `%s` | %s |" % (m, ", ".join("`%s`" % b for b in edges[m]) or "-"))
    return "\n".join(lines) + "\n"


def main(argv):
    mods = modules()
    edges = imports(mods)
    text = render(edges, mods)
    if "--check" in argv:
        stale = not os.path.exists(OUT) or open(OUT).read() != text
        for p in problems(edges):
            print(p)
        if stale:
            print("docs/modules.md is stale: run python docs/module_graph.py")
        return 1 if stale or problems(edges) else 0
    with open(OUT + ".tmp", "w") as f:
        f.write(text)
    os.replace(OUT + ".tmp", OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
