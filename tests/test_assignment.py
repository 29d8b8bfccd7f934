"""The classroom assignment mode (tools/assignment.py): a stub keeps its region's markers and `# Provides:` comment,
notebook cells are cut the same way, grading restores every other exercise's reference solution, and each exercise
is scored alone on tests of its own."""
import ast
import json
import re
from pathlib import Path

import pytest

from tools import assignment as A

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {"notebooks/02_codec.ipynb": (5, 1), "notebooks/03_diffusion.ipynb": (5, 8)}   # cell, exercise
SRC = ("def f(x):\n    '''doc'''\n    # BEGIN SOLUTION 3\n    # Provides: return y\n    y = x + 1\n    return y\n"
       "    # END SOLUTION\n\n\ndef g():\n    total = 0\n    for k in range(3):\n        # BEGIN SOLUTION 2\n"
       "        # Provides: total += k\n        total = total + k\n        # END SOLUTION\n    return total\n")


def run(text: str) -> dict:
    scope = {}
    exec(compile(text, "student.py", "exec"), scope)
    return scope


def test_a_stub_keeps_the_markers_and_the_provides_comment():
    out, cut = A.strip(SRC)
    assert cut == {2, 3} and "y = x + 1" not in out and "total = total + k" not in out
    assert out.count("# BEGIN SOLUTION") == 2 and out.count("# END SOLUTION") == 2
    assert '    # Provides: return y\n    raise NotImplementedError("Exercise 3: ' in out
    assert '        # Provides: total += k\n        raise NotImplementedError("Exercise 2: ' in out
    with pytest.raises(NotImplementedError, match="Exercise 2"):
        run(out)["g"]()
    assert A.strip(SRC, keep=frozenset({2, 3})) == (SRC, set())
    kept, cut = A.strip(SRC, keep=frozenset({2}))
    assert cut == {3} and run(kept)["g"]() == 3


@pytest.mark.parametrize("text, error", [
    ("# BEGIN SOLUTION 1\n# Provides: x\nx = 1\n", "never closed"),
    ("# BEGIN SOLUTION 1\n# BEGIN SOLUTION 2\n# END SOLUTION\n", "inside another"),
    ("# BEGIN SOLUTION 99\n# END SOLUTION\n", "not in tools/exercises.json"),
    ("x = 1\n# END SOLUTION\n", "without BEGIN"),
    ("# BEGIN SOLUTION 1\nx = 1\n# END SOLUTION\n", "must begin with a `# Provides:`"),
])
def test_bad_markers_are_one_clear_error(text, error):
    with pytest.raises(ValueError, match=re.escape(error)):
        A.strip(text, "f.py")


def test_restore_takes_every_other_exercise_from_the_reference():
    student, _ = A.strip(SRC)
    student = re.sub(r'^    raise NotImplementedError\("Exercise 3.*$', "    return x + 2", student, flags=re.M)
    graded_3 = run(A.restore(student, SRC, "f.py", 3))         # the student's exercise 3, the reference's 2
    assert graded_3["f"](1) == 3 and graded_3["g"]() == 3
    graded_2 = run(A.restore(student, SRC, "f.py", 2))         # the reference's 3, the student's (stubbed) 2
    assert graded_2["f"](1) == 2
    with pytest.raises(NotImplementedError):
        graded_2["g"]()
    unmarked = student.replace("    # BEGIN SOLUTION 3\n", "", 1).replace("    # END SOLUTION\n", "", 1)
    with pytest.raises(ValueError, match=re.escape("expected solution regions of exercises [3, 2] in this order, "
                                                   "found [2]")):
        A.restore(unmarked, SRC, "f.py", 3)


def test_notebook_regions_are_cut_and_only_their_cells_lose_outputs():
    for rel, (cell, n) in NOTEBOOKS.items():
        text = (ROOT / rel).read_text(encoding="utf-8")
        before = json.loads(text)["cells"]
        assert before[cell]["outputs"], f"{rel} cell {cell}: the reference keeps its outputs"
        student, cut = A.strip_notebook(text, rel)
        after = json.loads(student)["cells"]
        assert cut == {n} and after[cell]["outputs"] == [] and after[cell]["execution_count"] is None
        assert f'raise NotImplementedError("Exercise {n}: ' in "".join(after[cell]["source"])
        assert "# Provides:" in "".join(after[cell]["source"])
        assert [c for k, c in enumerate(after) if k != cell] == [c for k, c in enumerate(before) if k != cell]
        assert A.strip_notebook(text, rel, keep=frozenset({n})) == (text, set())     # byte for byte


def test_every_provides_comment_names_what_the_code_after_it_reads():
    sources = [(rel, (ROOT / rel).read_text(encoding="utf-8")) for rel in A.region_files()]
    sources += [cell for rel in NOTEBOOKS for cell in A.notebook_cells((ROOT / rel).read_text(encoding="utf-8"), rel)]
    assert len(sources) > len(NOTEBOOKS) + 3
    assert [p for name, text in sources for p in A.missing_provides(text, name)] == []
    rvq = (ROOT / "rvq.py").read_text(encoding="utf-8")
    tree = ast.parse(rvq)
    outputs = [A.region_outputs(tree, r) for r in A.regions(rvq.splitlines(keepends=True), "rvq.py")]
    assert outputs == [(set(), True), ({"z", "r"}, False), ({"total", "r_j"}, False)]
    vague = SRC.replace("# Provides: total += k", "# Provides: the sum").replace("# Provides: return y", "# Provides: y")
    assert A.missing_provides(vague, "f.py") == [
        "f.py line 3: exercise 3's `# Provides:` comment does not name return",
        "f.py line 13: exercise 2's `# Provides:` comment does not name total"]


def test_each_test_belongs_to_one_exercise_and_has_a_hint(tmp_path):
    assert sorted(A.EXERCISES) == list(range(1, 9))
    for n, e in A.EXERCISES.items():
        assert e["tests"] and (ROOT / e["file"]).is_file(), n
        for test, hint in e["tests"].items():
            path, name = test.split("::")
            assert f"def {name.split('[')[0]}(" in (ROOT / path).read_text(encoding="utf-8"), test
            assert hint.strip() and "\n" not in hint, test
    eq1 = list(A.EXERCISES[1]["tests"])                          # Eq. 1 only: not k-means, EMA, dead codes
    assert all(t.startswith("tests/test_rvq.py::") for t in eq1)
    assert not [t for t in eq1 if re.search("kmeans|ema_|dead_code|statistics", t)]
    twice = {"1": A.EXERCISES[1], "2": {**A.EXERCISES[2], "tests": A.EXERCISES[1]["tests"]}}
    (tmp_path / "ex.json").write_text(json.dumps(twice), encoding="utf-8")
    with pytest.raises(ValueError, match="is listed under exercises 1 and 2"):
        A.load_exercises(tmp_path / "ex.json")


def test_student_copy_and_scratch_copy(tmp_path, capsys):
    """The scratch copy graded for exercise 5 keeps the student's own code, stubs exercise 5 only, and runs the
    reference's tests; a broken or missing student copy is a one-line error."""
    student = tmp_path / "student"
    assert A.make_copy(student) == set(A.EXERCISES)
    with pytest.raises(ValueError, match="already exists"):
        A.make_copy(student)
    rvq = student / "rvq.py"
    rvq.write_text(rvq.read_text(encoding="utf-8") + "\nHELPER = 1  # the student's own line\n", encoding="utf-8")
    test_rvq = (ROOT / "tests" / "test_rvq.py").read_text(encoding="utf-8")
    (student / "tests" / "test_rvq.py").write_text("def test_nothing():\n    pass\n", encoding="utf-8")
    A.scratch_copy(student, tmp_path / "graded", 5)
    stubs = [m.group(1) for rel in A.region_files() for m in
             re.finditer(r'raise NotImplementedError\("Exercise (\d+)', (tmp_path / "graded" / rel).read_text("utf-8"))]
    assert stubs == ["5"]                                       # every other exercise has its solution back
    assert "HELPER = 1" in (tmp_path / "graded" / "rvq.py").read_text(encoding="utf-8")
    assert (tmp_path / "graded" / "tests" / "test_rvq.py").read_text(encoding="utf-8") == test_rvq
    prior = student / "prior.py"
    prior.write_text(prior.read_text(encoding="utf-8").replace("    # END SOLUTION\n", ""), encoding="utf-8")
    for where, error in ((tmp_path / "nowhere", "run `make assignment` first"), (student, "is never closed")):
        assert A.main(["grade", "--out", str(where)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and error in err, err


@pytest.mark.slow
def test_each_exercise_is_scored_alone(tmp_path):
    """With exactly one exercise solved it scores full marks and every other (cut) exercise scores zero; with every
    exercise but that one solved, the reverse. Between them, every exercise's tests pass with its solution and fail
    without it, whatever the other exercises hold."""
    k, every, shown = 5, frozenset(A.EXERCISES), []
    A.make_copy(tmp_path / "one", frozenset({k}))
    one = A.grade(tmp_path / "one", jobs=2, show=shown.append)
    assert one == {n: (t if n == k else 0, t) for n, (_, t) in one.items()}, one
    A.make_copy(tmp_path / "rest", every - {k})
    rest = A.grade(tmp_path / "rest", jobs=2, show=shown.append)
    assert rest == {n: (0 if n == k else t, t) for n, (_, t) in rest.items()}, rest
    out = "\n".join(shown)
    total = sum(t for _, t in one.values())
    assert total == len({t for e in A.EXERCISES.values() for t in e["tests"]})       # each test counted once
    assert f"total: {one[k][1]}/{total} tests pass" in out
    first = next(iter(A.EXERCISES[1]["tests"]))
    assert f"FAIL {first}  (not implemented)\n           hint: {A.EXERCISES[1]['tests'][first]}" in out
