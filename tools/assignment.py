"""Classroom assignment mode: a student copy of the project with the heart of the paper cut out, graded by the tests.

    make assignment                   # writes assignment/ : the project with every solution region replaced by a stub
    make grade                        # grades assignment/: each exercise alone, a score and failing tests per exercise
    python -m tools.assignment check  # (teacher) every exercise's tests pass with the solutions and fail without

Each exercise is one or more regions of the component files (and of notebook code cells):

    # BEGIN SOLUTION 3
    # Provides: return the score, shaped like z_t      <- kept in the stub: what the code after the region reads
    ...the code that computes the equation...
    # END SOLUTION

The student copy keeps the markers and the region's leading comments (they must begin with `# Provides:` and name
every variable that the code after the region reads), and replaces the code by `raise NotImplementedError(...)`;
a notebook cell with a region also loses its outputs. tools/exercises.json holds, per exercise, its file, what to
implement, and its tests, each with a one-line hint; a test belongs to one exercise only. `grade` scores exercise n
in a scratch copy of the student's tree in which every region of every other exercise is the reference solution
(taken from this checkout), running only exercise n's tests, so each score depends on that exercise alone.
The teacher's guide is docs/assignment.md.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPING = ROOT / "tools" / "exercises.json"
SKIP = {"tools/assignment.py", "tests/test_assignment.py"}     # they quote the markers: never cut
REPORT = ".grade-report.txt"
NOT_COPIED = {".git", ".venv", ".cache", ".pytest_cache", "__pycache__", ".ipynb_checkpoints", "data", "out", "runs",
              REPORT}                                           # left out of the scratch copies that are graded
BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION (\d+)\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
PROVIDES = "# Provides:"
STUB = 'raise NotImplementedError("Exercise '


def load_exercises(path: Path = MAPPING) -> dict:
    """{n: {"file", "what", "tests": {test ID: hint}}} from tools/exercises.json; a test listed under two exercises
    is a ValueError (the total counts each test once)."""
    exercises = {int(n): e for n, e in json.loads(path.read_text(encoding="utf-8")).items()}
    owner = {}
    for n, e in exercises.items():
        for test in e["tests"]:
            if test in owner:
                raise ValueError(f"{path.name}: {test} is listed under exercises {owner[test]} and {n}")
            owner[test] = n
    return exercises


EXERCISES = load_exercises()


@dataclass
class Region:
    n: int          # the exercise
    begin: int      # index of the BEGIN line
    end: int        # index of the END line


def regions(lines: list, name: str) -> list:
    """The solution regions of a file's lines, in order; an unclosed, nested or unknown one is a ValueError."""
    found, opened = [], None
    for k, line in enumerate(lines):
        begin = BEGIN.match(line)
        if begin:
            if opened is not None:
                raise ValueError(f"{name} line {k + 1}: a solution region inside another (opened at line "
                                 f"{opened.begin + 1})")
            opened = Region(int(begin.group(2)), k, -1)
            if opened.n not in EXERCISES:
                raise ValueError(f"{name} line {k + 1}: exercise {opened.n} is not in tools/exercises.json")
        elif END.match(line):
            if opened is None:
                raise ValueError(f"{name} line {k + 1}: END SOLUTION without BEGIN")
            opened.end = k
            found.append(opened)
            opened = None
    if opened is not None:
        raise ValueError(f"{name}: the solution region opened at line {opened.begin + 1} is never closed")
    return found


def contract(lines: list, r: Region, name: str) -> list:
    """The region's leading comment lines (kept in the stub); the first must begin with `# Provides:`."""
    kept = []
    for line in lines[r.begin + 1:r.end]:
        if not line.lstrip().startswith("#"):
            break
        kept.append(line)
    if not kept or not kept[0].lstrip().startswith(PROVIDES):
        raise ValueError(f"{name} line {r.begin + 2}: exercise {r.n}'s region must begin with a `{PROVIDES}` "
                         f"comment (what the code after it reads)")
    return kept


def strip(text: str, name: str = "file", keep: frozenset = frozenset()) -> tuple[str, set]:
    """Source text -> (the student's text, the exercises cut). A region of an exercise not in `keep` becomes its
    markers, its leading `# Provides:` comments and one raise at the BEGIN marker's indentation."""
    lines = text.splitlines(keepends=True)
    out, pos, cut = [], 0, set()
    for r in regions(lines, name):
        stub = contract(lines, r, name)
        if r.n in keep:
            continue
        indent = BEGIN.match(lines[r.begin]).group(1)
        title = EXERCISES[r.n]["what"].replace('"', "'")
        out += lines[pos:r.begin + 1] + stub + [f'{indent}{STUB}{r.n}: {title}")\n']
        pos, cut = r.end, cut | {r.n}
    return "".join(out + lines[pos:]), cut


def restore(student: str, reference: str, name: str, n: int) -> str:
    """The student's text with every region of an exercise other than n replaced by the reference's region.
    The two must hold regions of the same exercises in the same order (the markers left as the student got them)."""
    s_lines, r_lines = student.splitlines(keepends=True), reference.splitlines(keepends=True)
    s_regs, r_regs = regions(s_lines, name), regions(r_lines, name)
    if [r.n for r in s_regs] != [r.n for r in r_regs]:
        raise ValueError(f"{name}: expected solution regions of exercises {[r.n for r in r_regs]} in this order, "
                         f"found {[r.n for r in s_regs]}: keep the `# BEGIN SOLUTION n` / `# END SOLUTION` "
                         f"lines around your code")
    out, pos = [], 0
    for s, r in zip(s_regs, r_regs):
        if s.n != n:
            out += s_lines[pos:s.begin] + r_lines[r.begin:r.end + 1]
            pos = s.end + 1
    return "".join(out + s_lines[pos:])


def strip_notebook(text: str, name: str, keep: frozenset = frozenset()) -> tuple[str, set]:
    """A notebook's JSON -> (the student's JSON, the exercises cut): `strip` on each code cell's source; a cell
    that had a region cut loses its outputs and execution count."""
    nb, cut = json.loads(text), set()
    for k, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        source, got = strip("".join(cell["source"]), f"{name} cell {k}", keep)
        if got:
            cell.update(source=source.splitlines(keepends=True), outputs=[], execution_count=None)
            cut |= got
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n", cut


# ---------------------------------------------------------------------------------------------------------------
# What the code after a region reads: every name it must define, checked against its `# Provides:` comment
# ---------------------------------------------------------------------------------------------------------------
def _innermost(tree: ast.AST, kinds: tuple, first: int):
    """The innermost node of `kinds` that starts before line `first` and runs into it (1-based), or None."""
    around = [x for x in ast.walk(tree) if isinstance(x, kinds) and x.lineno < first < x.end_lineno]
    return max(around, key=lambda x: x.lineno, default=None)


def region_outputs(tree: ast.AST, r: Region) -> tuple[set, bool]:
    """(names the region assigns that are read after it, whether it returns). "After" is later in the enclosing
    function (or module), or anywhere else in an enclosing loop (the next iteration), or earlier in the region
    itself when it runs in a loop (`x = x + ...`)."""
    first, last = r.begin + 1, r.end + 1
    scope = _innermost(tree, (ast.FunctionDef, ast.AsyncFunctionDef), first) or tree
    loop = _innermost(scope, (ast.For, ast.While), first)
    names = [x for x in ast.walk(scope) if isinstance(x, ast.Name)]
    inside = [x for x in names if first < x.lineno < last]
    assigned = {}
    for x in inside:
        if isinstance(x.ctx, ast.Store):
            assigned[x.id] = min(assigned.get(x.id, x.lineno), x.lineno)

    def read_after(x) -> bool:
        if x.lineno >= last:
            return True
        if loop is None or x.lineno < loop.lineno or x.lineno > loop.end_lineno:
            return False
        return x.lineno <= first or x.lineno <= assigned.get(x.id, 0)

    read = {x.id for x in names if isinstance(x.ctx, ast.Load) and x.id in assigned and read_after(x)}
    returns = any(isinstance(x, ast.Return) and first < x.lineno < last for x in ast.walk(scope))
    return read, returns


def missing_provides(text: str, name: str) -> list:
    """One line per region whose `# Provides:` comment leaves out a name the code after it reads, or `return`."""
    lines = text.splitlines(keepends=True)
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []                                       # e.g. a notebook cell with shell commands: not checked
    problems = []
    for r in regions(lines, name):
        said = "".join(contract(lines, r, name))
        read, returns = region_outputs(tree, r)
        left_out = sorted(v for v in read if not re.search(rf"(?<!\w){re.escape(v)}(?!\w)", said))
        left_out += ["return"] if returns and "return" not in said else []
        if left_out:
            problems.append(f"{name} line {r.begin + 1}: exercise {r.n}'s `{PROVIDES}` comment does not name "
                            f"{', '.join(left_out)}")
    return problems


def notebook_cells(text: str, name: str) -> list:
    """[(a name for the cell, its source)] of a notebook's code cells."""
    cells = json.loads(text)["cells"]
    return [(f"{name} cell {k}", "".join(c["source"])) for k, c in enumerate(cells) if c["cell_type"] == "code"]


# ---------------------------------------------------------------------------------------------------------------
# The student copy
# ---------------------------------------------------------------------------------------------------------------
def tracked_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split("\0")
    return [ROOT / n for n in names if n]


def student_text(src: Path, rel: str, solved: frozenset) -> tuple[str | None, set]:
    """(the student's version of a tracked file, the exercises cut), or (None, set()) to copy it unchanged. A
    region's `# Provides:` comment that leaves out what the code after it reads is a ValueError."""
    if rel in SKIP or src.suffix not in (".py", ".ipynb"):
        return None, set()
    text = src.read_text(encoding="utf-8")
    if "# BEGIN SOLUTION" not in text:
        return None, set()
    cells = notebook_cells(text, rel) if src.suffix == ".ipynb" else [(rel, text)]
    problems = [p for cell_name, source in cells for p in missing_provides(source, cell_name)]
    if problems:
        raise ValueError(problems[0])
    return (strip_notebook if src.suffix == ".ipynb" else strip)(text, rel, solved)


def make_copy(out: Path, solved: frozenset = frozenset(), force: bool = False) -> set:
    """Write the student copy of the tracked files to `out`, every exercise cut but those in `solved`; returns the
    exercises cut. Checkpoints are linked, not copied (large, read-only). An existing `out` (a student's work?) is
    a ValueError unless `force`."""
    if out.exists() and any(out.iterdir()) and not force:
        raise ValueError(f"{out} already exists (a student's work?): delete it, or pass --force (make: FORCE=1) "
                         f"to replace it")
    if out.exists():
        shutil.rmtree(out)
    cut = set()
    for src in tracked_files():
        rel = src.relative_to(ROOT).as_posix()
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        text, got = student_text(src, rel, frozenset(solved))
        if text is not None:
            dst.write_text(text, encoding="utf-8")
            cut |= got
        elif rel.startswith("checkpoints/"):
            dst.symlink_to(src)
        else:
            shutil.copy2(src, dst)
    if (ROOT / ".venv").exists():
        (out / ".venv").symlink_to(ROOT / ".venv")
    return cut


# ---------------------------------------------------------------------------------------------------------------
# Grading
# ---------------------------------------------------------------------------------------------------------------
def region_files() -> list[str]:
    """The tracked .py files (relative paths) of this checkout that hold solution regions."""
    return [src.relative_to(ROOT).as_posix() for src in tracked_files()
            if src.suffix == ".py" and src.relative_to(ROOT).as_posix() not in SKIP
            and "# BEGIN SOLUTION" in src.read_text(encoding="utf-8")]


def scratch_copy(student: Path, dst: Path, n: int):
    """Copy the student's tree to `dst` with every region of every exercise but n restored from the reference, and
    tests/ and pytest.ini replaced by the reference's (an edited test changes no grade)."""
    shutil.copytree(student, dst, symlinks=True, ignore=lambda d, names: [x for x in names if x in NOT_COPIED])
    shutil.rmtree(dst / "tests", ignore_errors=True)
    for src in tracked_files():
        rel = src.relative_to(ROOT).as_posix()
        if rel.startswith("tests/") or rel == "pytest.ini":
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    for rel in region_files():
        text = restore((student / rel).read_text(encoding="utf-8"), (ROOT / rel).read_text(encoding="utf-8"),
                       str(student / rel), n)
        (dst / rel).write_text(text, encoding="utf-8")


def run_tests(folder: Path, tests: list, timeout: float) -> tuple[dict, str]:
    """Run the given test IDs in `folder` -> ({test ID: (PASSED|FAILED|ERROR, message)}, pytest's output)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", *tests]
    try:
        r = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, "COLUMNS": "250"})
    except subprocess.TimeoutExpired:
        return {t: ("FAILED", f"timed out after {timeout:.0f} s") for t in tests}, f"timed out after {timeout:.0f} s"
    found = re.finditer(r"^(PASSED|FAILED|ERROR) (\S+)(?: - (.*))?$", r.stdout, re.M)
    return {m.group(2): (m.group(1), m.group(3) or "") for m in found}, r.stdout + r.stderr


def grade_one(student: Path, n: int, timeout: float) -> dict:
    """Exercise n alone: its tests in a scratch copy with the other exercises' solutions in place."""
    tests = list(EXERCISES[n]["tests"])
    start = time.time()
    with tempfile.TemporaryDirectory(prefix=f"grade{n}-") as tmp:
        scratch_copy(student, Path(tmp) / "tree", n)
        status, log = run_tests(Path(tmp) / "tree", tests, timeout)
    failed = {t: status.get(t, ("", "did not run: see the report"))[1] for t in tests
              if status.get(t, ("",))[0] != "PASSED"}
    return dict(n=n, passed=len(tests) - len(failed), total=len(tests), failed=failed, log=log,
                seconds=time.time() - start)


def describe(result: dict) -> list[str]:
    """The lines `grade` prints for one exercise: its score, then each failing test with its hint."""
    e = EXERCISES[result["n"]]
    what = e["what"] if len(e["what"]) <= 60 else e["what"][:59] + "…"
    lines = [f"{result['n']:>2}  {e['file']:<13}{result['passed']:>3}/{result['total']:<3} {result['seconds']:>4.0f} s"
             f"  {what}"]
    for test, message in result["failed"].items():
        if "NotImplementedError" in message:
            note = "  (not implemented)"
        elif message.startswith(("did not run", "timed out")):
            note = f"  ({message})"
        else:
            note = ""
        lines += [f"      FAIL {test}{note}", f"           hint: {e['tests'][test]}"]
    return lines


def check_markers(student: Path):
    """A ValueError unless this checkout holds the reference solutions and every region file of the student's copy
    holds the same regions, in the same order."""
    for rel in region_files():
        reference = (ROOT / rel).read_text(encoding="utf-8")
        if STUB in reference:
            raise ValueError(f"{ROOT / rel} holds stubs, not the reference solutions: grade from the teacher's "
                             f"checkout")
        if not (student / rel).is_file():
            raise ValueError(f"{student / rel} is missing: the student copy must keep every file with exercises")
        restore((student / rel).read_text(encoding="utf-8"), reference, str(student / rel), 0)


def grade(student: Path, jobs: int = 1, timeout: float = 600, show=print) -> dict:
    """Grade a student copy, each exercise on its own -> {exercise: (passed, total)}; prints a table, the failing
    tests with their hints, and the total over distinct tests; pytest's output goes to <student>/.grade-report.txt."""
    check_markers(student)
    start, scores, report = time.time(), {}, []
    show(f"Grading {student}: each exercise alone, with the reference solution of every other exercise in place.\n")
    show(" #  file          passed  time  what")
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for result in pool.map(lambda n: grade_one(student, n, timeout), sorted(EXERCISES)):
            for line in describe(result):
                show(line)
            scores[result["n"]] = (result["passed"], result["total"])
            report.append(f"===== exercise {result['n']} =====\n{result['log']}")
    (student / REPORT).write_text("\n".join(report), encoding="utf-8")
    passed, total = sum(p for p, _ in scores.values()), sum(t for _, t in scores.values())
    done = sum(p == t for p, t in scores.values())
    show(f"\ntotal: {passed}/{total} tests pass ({passed / total:.0%}; each test belongs to one exercise, so the "
         f"total counts it once); {done} of {len(scores)} exercises complete")
    show(f"pytest's output: {student / REPORT}; graded in {time.time() - start:.0f} s")
    return scores


def check(work: Path) -> list[str]:
    """Grade the copy with every solution in place (every test must pass) and the copy with none (every test must
    fail, or it does not test its exercise), both written under `work` -> one line per test that does otherwise."""
    problems = []
    for label, solved in (("solved", frozenset(EXERCISES)), ("cut", frozenset())):
        make_copy(work / label, solved, force=True)
        for n in sorted(EXERCISES):
            failed = grade_one(work / label, n, timeout=600)["failed"]
            if solved:
                problems += [f"exercise {n}: {t} fails with every solution in place" for t in sorted(failed)]
            else:
                problems += [f"exercise {n}: {t} passes with the exercise cut out: it does not test the exercise"
                             for t in sorted(set(EXERCISES[n]["tests"]) - set(failed))]
    return problems


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m tools.assignment",
                                 description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["make", "grade", "check"])
    ap.add_argument("--out", type=Path, default=ROOT / "assignment", help="the student copy (default assignment/)")
    ap.add_argument("--force", action="store_true", help="make: replace an existing student copy")
    ap.add_argument("--jobs", type=int, default=1, help="grade: exercises graded at once (default 1)")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "make":
            cut = make_copy(args.out, force=args.force)
            missing = set(EXERCISES) - cut
            if missing:
                raise ValueError(f"exercises {sorted(missing)} have no solution region in the code")
            print(f"student copy in {args.out}: exercises {sorted(cut)} cut out; grade with `make grade`")
        elif args.command == "grade":
            if not args.out.is_dir():
                raise ValueError(f"no student copy at {args.out}: run `make assignment` first")
            grade(args.out, args.jobs)
        else:
            with tempfile.TemporaryDirectory(prefix="assignment-check-") as work:
                problems = check(Path(work))
            print("\n".join(problems) or "every exercise's tests pass with its solution and fail without it")
            return 1 if problems else 0
    except (ValueError, OSError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
