"""Classroom assignment mode: a student copy of the project with the heart of the paper cut out, graded by the tests.

    make assignment                 # writes assignment/ : the project with every solution region replaced
    make grade                      # runs the exercises' tests in assignment/ and prints a score per exercise
    python -m tools.assignment map  # (teacher, after changing a region or a test) which tests each exercise needs

In the component files, each exercise is one or more regions

    # BEGIN SOLUTION 3
    ...the code that computes the equation...
    # END SOLUTION

which the student copy replaces by `raise NotImplementedError("Exercise 3: <what to implement>")` at the marker's
indentation. The existing tests are the autograder: `EXERCISES` names each exercise and its equation; `map` records,
in tools/exercises.json, the tests of the component test files that fail when that exercise alone is cut out (those
are its tests, graded by `grade`). The teacher's guide is docs/assignment.md.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPING = ROOT / "tools" / "exercises.json"
TEST_FILES = ["tests/test_rvq.py", "tests/test_diffusion.py", "tests/test_prior.py", "tests/test_prompt.py",
              "tests/test_model.py"]
EXERCISES = {
    1: ("rvq.py", "residual vector quantization, Eq. 1: i_j = argmin_k ||r_j − C_j[k]||², e_j = C_j[i_j], "
                  "r_{j+1} = r_j − e_j, z = Σ_j e_j"),
    2: ("diffusion.py", "the VP SDE's marginal: ρ(z_0, t) = exp(−½ ∫₀ᵗ β_s ds) z_0, Σ_t = 1 − exp(−∫₀ᵗ β_s ds)"),
    3: ("diffusion.py", "the score from a data prediction: ∇log p_t(z_t) ≈ Σ_t⁻¹ (ρ(ẑ_0, t) − z_t)"),
    4: ("diffusion.py", "the diffusion loss terms: data ||ẑ_0 − z_0||², score as a weighted noise prediction"),
    5: ("rvq.py", "the CE-RVQ loss: cross-entropy of each quantizer's ID given ẑ_0 minus the earlier codes"),
    6: ("prior.py", "the length regulator: repeat phoneme hidden n d_n times"),
    7: ("prompt.py", "speech prompting: m-query attention over the prompt, and FiLM(x, a) = γ(a) ⊙ x + β(a)"),
    8: ("diffusion.py", "the paper's sampler: Euler steps of the probability-flow ODE, "
                       "dz/dt = −½ (z + ∇log p_t(z)) β_t"),
}
BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION (\d+)\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")


def strip(text: str, name: str = "file") -> tuple[str, set]:
    """Source text -> (the student's text, the exercise numbers cut). A region's lines are replaced by one raise
    at the BEGIN marker's indentation; an unclosed or nested region is a ValueError."""
    out, cut, open_at = [], set(), None
    for k, line in enumerate(text.splitlines(keepends=True), 1):
        begin = BEGIN.match(line)
        if begin:
            if open_at is not None:
                raise ValueError(f"{name} line {k}: a solution region inside another (opened at line {open_at})")
            open_at, n = k, int(begin.group(2))
            if n not in EXERCISES:
                raise ValueError(f"{name} line {k}: exercise {n} is not in tools/assignment.py EXERCISES")
            title = EXERCISES[n][1].replace('"', "'")
            out.append(f'{begin.group(1)}raise NotImplementedError("Exercise {n}: {title}")\n')
            cut.add(n)
        elif END.match(line):
            if open_at is None:
                raise ValueError(f"{name} line {k}: END SOLUTION without BEGIN")
            open_at = None
        elif open_at is None:
            out.append(line)
    if open_at is not None:
        raise ValueError(f"{name}: the solution region opened at line {open_at} is never closed")
    return "".join(out), cut


def tracked_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / n for n in names]


def make_copy(out: Path, only: set | None = None) -> set:
    """Write the student copy of the tracked files to `out` (cutting every exercise, or only those in `only`);
    returns the exercises cut. Checkpoints are linked, not copied (they are large and read-only)."""
    if out.exists():
        shutil.rmtree(out)
    cut = set()
    for src in tracked_files():
        rel = src.relative_to(ROOT)
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".py" and src.name != "assignment.py":
            text = src.read_text(encoding="utf-8")
            if only is not None:                           # keep the other exercises' solutions
                text = re.sub(r"^(\s*)# BEGIN SOLUTION (\d+)\s*$",
                              lambda m: m.group(0) if int(m.group(2)) in only else f"{m.group(1)}# BEGIN KEPT",
                              text, flags=re.M)
                text = _drop_kept_markers(text)
            student, got = strip(text, str(rel))
            cut |= got
            dst.write_text(student, encoding="utf-8")
        elif rel.parts[0] == "checkpoints":
            dst.symlink_to(src)
        else:
            shutil.copy2(src, dst)
    venv = ROOT / ".venv"
    if venv.exists() and not (out / ".venv").exists():
        (out / ".venv").symlink_to(venv)
    return cut


def _drop_kept_markers(text: str) -> str:
    """Remove the markers of regions kept with their solution (`only` mode), leaving their code in place."""
    lines, keep, out = text.splitlines(keepends=True), False, []
    for line in lines:
        if line.strip() == "# BEGIN KEPT":
            keep = True
            continue
        if keep and END.match(line):
            keep = False
            continue
        out.append(line)
    return "".join(out)


def failing_tests(folder: Path) -> tuple[set, set]:
    """Run the component test files in `folder`: (failed test IDs, passed test IDs)."""
    report = folder / ".pytest-report.txt"
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", *TEST_FILES],
                       cwd=folder, capture_output=True, text=True)
    report.write_text(r.stdout + r.stderr)
    failed = set(re.findall(r"^(?:FAILED|ERROR) (\S+)", r.stdout, re.M))
    passed = set(re.findall(r"^PASSED (\S+)", r.stdout, re.M))
    return failed, passed


def map_exercises(work: Path) -> dict:
    """{exercise: [test IDs that fail when that exercise alone is cut out]}, written to tools/exercises.json."""
    mapping = {}
    for n in EXERCISES:
        cut = make_copy(work, only={n})
        if cut != {n}:
            raise ValueError(f"exercise {n} has no solution region in the code")
        failed, _ = failing_tests(work)
        if not failed:
            raise ValueError(f"no test fails without exercise {n}: it is not graded")
        mapping[n] = sorted(failed)
        print(f"exercise {n}: {len(failed)} tests")
    MAPPING.write_text(json.dumps({str(k): v for k, v in mapping.items()}, indent=1) + "\n")
    shutil.rmtree(work)
    return mapping


def grade(folder: Path) -> dict:
    """Run the tests in a student copy -> {exercise: (passed, total)}, printed as a table."""
    mapping = {int(k): v for k, v in json.loads(MAPPING.read_text()).items()}
    failed, passed = failing_tests(folder)
    scores = {}
    print("exercise  file          tests passed  score  what")
    for n, tests in mapping.items():
        ok = sum(t in passed for t in tests)
        scores[n] = (ok, len(tests))
        print(f"{n:>8}  {EXERCISES[n][0]:12s}  {ok:>5}/{len(tests):<6} {ok / len(tests):>5.0%}  {EXERCISES[n][1][:70]}")
    total = sum(a for a, _ in scores.values()) / sum(b for _, b in scores.values())
    print(f"total: {total:.0%} of the exercises' tests pass (report: {folder / '.pytest-report.txt'})")
    return scores


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.assignment",
                                 description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["make", "grade", "map"])
    ap.add_argument("--out", type=Path, default=ROOT / "assignment", help="the student copy (default assignment/)")
    args = ap.parse_args(argv)
    try:
        if args.command == "make":
            cut = make_copy(args.out)
            missing = set(EXERCISES) - cut
            if missing:
                raise ValueError(f"exercises {sorted(missing)} have no solution region in the code")
            print(f"student copy in {args.out}: exercises {sorted(cut)} cut out; grade with `make grade`")
        elif args.command == "grade":
            if not args.out.is_dir():
                raise ValueError(f"no student copy at {args.out}: run `make assignment` first")
            grade(args.out)
        else:
            map_exercises(args.out.with_name(args.out.name + "_map"))
    except (ValueError, OSError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
