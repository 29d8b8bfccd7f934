"""The layout rules of docs/architecture.md, checked on the source: which files may import which, no import cycle,
the design card's top level, and the size limits of a readable unit."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("corpus", "evaluation", "training", "tools")
COMPONENTS = {"rvq", "codec", "prompt", "prior", "diffusion", "model"}
SECTIONS = {"align", "section5"}
SCRIPTS = {"train", "sample"}

# what each group may import (groups: a component file, a paper section's file, a script, or a folder; two
# modules of their folders are named on their own because others reach for them alone)
MAY_IMPORT = {
    "component": {"component"},
    "align": {"component", "corpus", "training.presets"},
    "section5": {"component", "corpus", "align"},
    "corpus": {"corpus", "codec", "align", "training.presets"},
    "training.presets": {"component", "align"},
    "training": {"component", "corpus", "training", "training.presets", "evaluation.metrics"},
    "evaluation.metrics": {"component", "corpus", "evaluation", "evaluation.metrics"},
    "evaluation": {"component", "corpus", "align", "section5", "sample", "evaluation", "evaluation.metrics",
                   "training.presets"},
    "train": {"training", "training.presets", "corpus"},
    "sample": {"component", "corpus", "align", "section5"},
    "tools": {"component", "corpus", "align", "section5", "sample", "train", "training", "training.presets",
              "evaluation", "evaluation.metrics", "tools"},
}


def project_modules() -> dict:
    """{dotted module name: path} of every project source file outside tests/ and notebooks/."""
    mods = {p.stem: p for p in ROOT.glob("*.py")}
    for folder in FOLDERS:
        mods |= {f"{folder}.{p.stem}": p for p in (ROOT / folder).glob("*.py") if p.stem != "__init__"}
    return mods


def imports_of(path: Path, mods: dict) -> set:
    """The project modules a file imports anywhere (lazily inside functions too)."""
    found = set()
    for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(n, ast.Import):
            names = [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
            names = [n.module] + [f"{n.module}.{a.name}" for a in n.names]
        elif isinstance(n, ast.Call) and getattr(n.func, "id", "") == "__import__" and n.args and \
                isinstance(n.args[0], ast.Constant):
            names = [n.args[0].value]
        found |= {x for x in names if x in mods}
    return found


def group(module: str) -> str:
    if module in COMPONENTS:
        return "component"
    if module in ("training.presets", "evaluation.metrics"):
        return module
    return module.split(".")[0]


def test_each_file_imports_only_what_its_layer_may():
    mods = project_modules()
    wrong = []
    for m, path in mods.items():
        for dep in imports_of(path, mods) - {m}:
            allowed = MAY_IMPORT[group(m)]
            if group(dep) not in allowed and dep not in allowed:
                wrong.append(f"{m} imports {dep}")
    assert not wrong, wrong


def test_no_import_cycle():
    mods = project_modules()
    graph = {m: imports_of(p, mods) - {m} for m, p in mods.items()}
    state = {}

    def visit(m, path):
        state[m] = "open"
        for d in graph[m]:
            assert state.get(d) != "open", "import cycle: " + " -> ".join(path + [d])
            if d not in state:
                visit(d, path + [d])
        state[m] = "done"

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_the_top_level_is_the_design_card():
    top = {p.stem for p in ROOT.glob("*.py")}
    assert top == COMPONENTS | SECTIONS | SCRIPTS, sorted(top ^ (COMPONENTS | SECTIONS | SCRIPTS))
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")
               and (p / "__init__.py").exists()}
    assert folders == set(FOLDERS)


def test_every_unit_is_readable():
    """No file over 450 lines, no function over 60 lines or 8 parameters, no block of 6+ lines repeated (the same
    lines or the same shape with other names), outside tests and notebooks: tools/units.py, which prints them."""
    from tools import units
    over = [line for path in units.source_files() for line in units.long_units(path)]
    assert not over, over
    assert not units.repeated_blocks(), units.repeated_blocks()


def test_the_repeat_finder_sees_the_same_shape_under_other_names(tmp_path):
    from tools import units
    body = "def {f}({a}, {b}):\n    total = {a} + {b} * 2\n    scaled = total / max({b}, 1)\n    values = [scaled, total, {a}]\n" \
           "    values.sort(reverse=True)\n    first = values[0] + values[1]\n    return first - values[2]\n"
    one, two = tmp_path / "one.py", tmp_path / "two.py"
    one.write_text(body.format(f="f", a="x", b="y"))
    two.write_text("import os\n\n\n" + body.format(f="g", a="left", b="right"))
    assert units.repeated_blocks([one, two], tmp_path) == ["one.py:1-6 = two.py:4-9"]
    two.write_text(body.format(f="g", a="left", b="right").replace("* 2", "** 2"))
    assert units.repeated_blocks([one, two], tmp_path) == []           # one line of another shape in every window
