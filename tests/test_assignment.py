"""The classroom assignment mode (tools/assignment.py): solution regions become NotImplementedError; the student
copy fails exactly the mapped exercises' tests, and with every solution restored the same tests all pass."""
import json
from pathlib import Path

import pytest

from tools import assignment

ROOT = Path(__file__).resolve().parents[1]


def test_strip_replaces_each_region_at_its_indentation():
    src = ("def f(x):\n    '''doc'''\n    # BEGIN SOLUTION 3\n    y = x + 1\n    return y\n    # END SOLUTION\n\n"
           "def g():\n        # BEGIN SOLUTION 2\n        return 1\n        # END SOLUTION\n")
    out, cut = assignment.strip(src)
    assert cut == {2, 3} and "y = x + 1" not in out and "return 1" not in out
    assert '    raise NotImplementedError("Exercise 3: ' in out and '        raise NotImplementedError("Exercise 2: ' in out
    compile(out, "student.py", "exec")                                   # still valid Python
    with pytest.raises(ValueError, match="never closed"):
        assignment.strip("# BEGIN SOLUTION 1\nx = 1\n")
    with pytest.raises(ValueError, match="inside another"):
        assignment.strip("# BEGIN SOLUTION 1\n# BEGIN SOLUTION 2\n# END SOLUTION\n")
    with pytest.raises(ValueError, match="not in tools/assignment.py"):
        assignment.strip("# BEGIN SOLUTION 99\n# END SOLUTION\n")


@pytest.mark.slow
def test_student_copy_fails_exactly_the_exercises_tests_and_the_solutions_pass(tmp_path):
    mapping = json.loads(assignment.MAPPING.read_text())
    assert sorted(int(k) for k in mapping) == sorted(assignment.EXERCISES) and len(assignment.EXERCISES) >= 8
    graded = set().union(*mapping.values())
    assert assignment.make_copy(tmp_path / "student") == set(assignment.EXERCISES)
    failed, passed = assignment.failing_tests(tmp_path / "student")
    assert failed == graded, (sorted(failed - graded), sorted(graded - failed))
    assert passed and not passed & graded
    assert assignment.make_copy(tmp_path / "solved", only=set()) == set()      # every solution kept
    failed, passed = assignment.failing_tests(tmp_path / "solved")
    assert not failed and graded <= passed
