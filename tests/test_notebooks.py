"""The notebooks: each is committed with its outputs (plots visible on the repository page), under 2 MB, and not
stale: executed afresh (from the notebooks/ folder, as a reader runs it) it raises nothing, draws the same number of
figures in every cell, and prints the same numbers within a small tolerance (CPU threads may change the last digits)
and the same True/False verdicts.

Their prose tells the truth about their outputs (`test_prose_numbers_are_printed_by_the_notebook`): every number a
markdown cell states must be printed by a code cell above it or in its own section (a section runs from one heading
to the next), within the rounding the prose uses, or be listed in an invisible comment of that cell with where it comes
from, `<!-- cited: 10.11 21.69 (the paper, Table 9) -->` (the paper's numbers, constants, figures measured
elsewhere). Not checked: numbers inside `$...$` math or backticks, references (Eq. 1, §3.2, Table 9, Fig. 1, cell 11,
notebook 02, Step 1, et al. 2022, NaturalSpeech 2) and digits inside a word (F0, log2, ho02). A comparison in prose
("A beats B", "rises", "lower than the noisy input") cannot be matched that way: the code cell computes it and prints
its verdict ("... lower than the noisy input: True"), or asserts it. A committed notebook prints no False verdict
(`test_printed_verdicts_hold`), and re-executed it must print the same verdicts, so a sentence whose comparison
stops holding fails the tests.

Each notebook's first cell says how long the whole notebook runs ("runs in about 20 s"), and a "## Try this" section
holds at least two "### Try this: ..." cells, each changing one knob with its expected outcome stated beforehand.

Wall times ("... in 12 s") vary from run to run: cells print them to stderr, which the comparison of fresh and
committed outputs leaves out (as it leaves out progress bars); prose that states a run time cites it.

After changing a notebook or the code it shows, refresh its outputs:
    .venv/bin/jupyter nbconvert --to notebook --execute --inplace notebooks/NN_name.ipynb
"""
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
NUMBER = re.compile(r"[-+]?\d+\.\d+|[-+]?\d+")


def images(cell) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell.get("outputs", []))


def printed_numbers(cell) -> list:
    text = "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o["output_type"] == "stream" and o.get("name") == "stdout")     # not stderr: progress bars
    text += "".join(o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", [])
                    if o["output_type"] == "execute_result")
    return [float(x) for x in NUMBER.findall(text)]


def verdicts(cell) -> list:
    """The True/False words a cell prints: a comparison's outcome."""
    text = "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o["output_type"] == "stream" and o.get("name") == "stdout")
    return re.findall(r"\b(?:True|False)\b", text)


def close(a: float, b: float) -> bool:
    return abs(a - b) <= max(0.02 * max(abs(a), abs(b)), 0.011)


def test_there_is_a_notebook_per_section():
    assert len(NOTEBOOKS) >= 6, [p.name for p in NOTEBOOKS]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_with_fresh_outputs(path, tmp_path):
    assert path.stat().st_size < 2e6, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB (limit 2 MB)"
    committed = nbformat.read(path, as_version=4)
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert sum(images(c) for c in code) >= 1, f"{path.name} is committed without its plots: execute it in place"
    assert not any(o["output_type"] == "error" for c in code for o in c.get("outputs", [])), path.name
    # executed by nbconvert in its own process, from the notebook's folder: a kernel client's threads in this
    # process would be inherited by the forks that render the toy corpus (toy.in_fresh_engine) and change their audio
    r = subprocess.run([sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute", "--output-dir",
                        str(tmp_path), "--ExecutePreprocessor.timeout=300", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, f"{path.name} failed to run:\n{r.stderr[-2000:]}"
    fresh = nbformat.read(tmp_path / path.name, as_version=4)
    for k, (old, new) in enumerate(zip(code, [c for c in fresh.cells if c.cell_type == "code"])):
        assert images(old) == images(new), f"{path.name} code cell {k}: {images(new)} figures, committed {images(old)}"
        a, b = printed_numbers(old), printed_numbers(new)
        assert len(a) == len(b) and all(close(x, y) for x, y in zip(a, b)), \
            f"{path.name} code cell {k} prints other numbers than committed (stale outputs?): {a[:12]} vs {b[:12]}"
        assert verdicts(old) == verdicts(new), \
            f"{path.name} code cell {k} prints other verdicts than committed: {verdicts(old)} vs {verdicts(new)}"


# Calls that compute one of the paper's equations (PAPER.md), and the equation's mark in the markdown before them.
EQUATION_CALLS = {
    r"\bint_beta\(|\bsigma2\(": r"\\Sigma_t",                      # the VP SDE's marginal
    r"\.argmin\(": r"\\arg\\min",                                  # Eq. 1, RVQ
    r"\bode_drift\(": r"dz_t",                                     # the probability-flow ODE
    r"\blength_regulate\(": r"d_n",                                # the length regulator
    r"\bdurations_from_log\(": r"\\log d",                         # duration loss / its inverse
    r"\bQueryAttention\(|\.query\b": r"softmax",                   # query attention
    r"\.loss\(": r"\\mathcal L",                                   # the loss terms
    r"\bSAMPLERS\[": r"dz_t|z_\{?k\+1",                             # a sampler's update rule
}


def preceding_markdown(cells, k: int) -> str:
    """The markdown cells between code cell k and the code cell before it."""
    text = []
    for c in reversed(cells[:k]):
        if c.cell_type == "code":
            break
        text.append(c.source)
    return "\n".join(text)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_equation_cell_is_preceded_by_its_equation(path):
    cells = nbformat.read(path, as_version=4).cells
    missing = []
    for k, c in enumerate(cells):
        if c.cell_type != "code":
            continue
        for call, mark in EQUATION_CALLS.items():
            if re.search(call, c.source) and not re.search(mark, preceding_markdown(cells, k)):
                missing.append(f"cell {k} calls {call!r} without {mark!r} in the markdown before it")
    assert not missing, f"{path.name}: " + "; ".join(missing)


# The prose against the outputs: see the module docstring.
MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$", re.S)
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
CITED = re.compile(r"<!--\s*cited:(.*?)-->", re.S)
COMMENT = re.compile(r"<!--.*?-->", re.S)
_REF_NUMBER = r"\(?\d+(?:\.\d+)*[a-z]?\)?"
_REF_WORD = r"(?:§|\b(?:Eqs?|Equations?|Figs?|Figures?|Tables?|Sections?|Step|Exercises?|cells?|notebooks?)\.?)"
REFERENCE = re.compile(rf"{_REF_WORD}\s*{_REF_NUMBER}(?:\s*(?:[–-]|,|and|or)\s*{_REF_NUMBER})*"
                       r"|\bet al\.?,? \d{4}|NaturalSpeech 2", re.I)
PROSE_NUMBER = re.compile(r"(?<![\w.,])\d{1,3}(?:,\d{3})+(?!\w)|(?<![\w.])\d+(?:\.\d+)?(?!\w|\.\d)")
UNSIGNED = re.compile(r"\d+(?:\.\d+)?")


def printed_text(cell) -> str:
    """What a code cell prints (stdout and its value), not stderr: progress bars and wall times."""
    text = "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o["output_type"] == "stream" and o.get("name") == "stdout")
    return text + "".join(o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", [])
                          if o["output_type"] == "execute_result")


def sections(cells) -> list:
    """The section number of every cell: a markdown cell opening with a heading (#, ##, ###) starts one."""
    out, k = [], 0
    for c in cells:
        k += c.cell_type == "markdown" and re.match(r"\s*#{1,3} ", c.source) is not None
        out.append(k)
    return out


def cited(source: str) -> dict:
    """{number: reason} from the cell's `<!-- cited: NUMBERS (REASON) NUMBERS (REASON) ... -->` comments."""
    out = {}
    for body in CITED.findall(source):
        for numbers, reason in re.findall(r"([^()]*)(?:\(([^()]*)\)|$)", body):
            out.update({w.replace(",", ""): reason.strip() for w in numbers.split()})
    return out


def prose_numbers(source: str) -> list:
    """(number as written, context) for every number the reader sees outside math, code and references."""
    text = REFERENCE.sub(" ", COMMENT.sub(" ", CODE.sub(" ", MATH.sub(" ", source))))
    return [(m.group(), " ".join(text[max(0, m.start() - 50): m.end() + 20].split()))
            for m in PROSE_NUMBER.finditer(text)]


def rounds_to(word: str, printed: list) -> bool:
    """Whether some printed number, rounded as the prose rounds `word` (signs aside), is `word`."""
    x = float(word.replace(",", ""))
    half = 0.5 * 10.0 ** -(len(word.split(".")[1]) if "." in word else 0)
    return any(abs(y - x) <= half + 1e-9 for y in printed)


def unsupported_numbers(cells) -> list:
    """One line per number of the prose that no code cell above it or in its section prints and no comment cites,
    and per cited number the cell no longer states or cites without a reason."""
    sec, bad = sections(cells), []
    for k, c in enumerate(cells):
        if c.cell_type != "markdown":
            continue
        printed = [float(x) for j, d in enumerate(cells) if d.cell_type == "code" and (j < k or sec[j] == sec[k])
                   for x in UNSIGNED.findall(printed_text(d))]
        sources, seen = cited(c.source), set()
        for word, context in prose_numbers(c.source):
            seen.add(word.replace(",", ""))
            if word.replace(",", "") not in sources and not rounds_to(word, printed):
                bad.append(f"cell {k}: {word} ('...{context}...') is printed by no code cell above it or in its "
                           "section")
        bad += [f"cell {k}: cited {w} is not in its prose" for w in sources if w not in seen]
        bad += [f"cell {k}: cited {w} without a reason '(...)'" for w, why in sources.items() if not why]
    return bad


def test_prose_check_catches_a_wrong_number():
    md = lambda s: nbformat.v4.new_markdown_cell(s)
    printed = nbformat.v4.new_output("stream", name="stdout", text="m = 16, SIM 0.805\n")
    code = nbformat.v4.new_code_cell("", outputs=[printed])
    assert unsupported_numbers([md("# A\nthrough m = 16 queries; SIM 0.81 (Eq. 5, §3.3, `--steps 150`)"), code]) == []
    assert len(unsupported_numbers([md("# A\nthrough m = 32 queries"), code])) == 1
    assert len(unsupported_numbers([md("# A\nSIM 0.82"), code])) == 1                    # not the printed 0.805
    assert len(unsupported_numbers([md("# A\nm = 16"), md("# B\nm = 16"), code])) == 1   # a later section's output
    assert unsupported_numbers([md("# A"), code, md("# B\nm = 16 above")]) == []             # an earlier one's
    assert unsupported_numbers([md("# A\n10.11 to 21.69 Hz <!-- cited: 10.11 21.69 (the paper, Table 9) -->")]) == []
    assert len(unsupported_numbers([md("# A\n<!-- cited: 7 (stale) -->")])) == 1
    assert unsupported_numbers([md("# A\n3 or 4, 0.1 <!-- cited: 3 4 (one) 0.1 (two) -->")]) == []
    assert len(unsupported_numbers([md("# A\n3 or 4 <!-- cited: 3 (one) 4 -->")])) == 1   # 4 without a reason


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_prose_numbers_are_printed_by_the_notebook(path):
    bad = unsupported_numbers(nbformat.read(path, as_version=4).cells)
    assert not bad, f"{path.name}: print these numbers above them or in their section, or cite them:\n" + \
        "\n".join(bad)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_printed_verdicts_hold(path):
    cells = nbformat.read(path, as_version=4).cells
    false = [f"code cell {k}: {line.strip()}" for k, c in enumerate(cells) if c.cell_type == "code"
             for line in printed_text(c).splitlines() if re.search(r"\bFalse\b", line)]
    assert not false, f"{path.name} prints verdicts that fail (fix the prose claiming them):\n" + "\n".join(false)


RUN_TIME = re.compile(r"\b(?:runs?|takes?)\b[^.]*?\babout \d+ (?:s|min)\b", re.I | re.S)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_notebook_states_its_run_time_and_has_try_this_cells(path):
    cells = nbformat.read(path, as_version=4).cells
    assert RUN_TIME.search(cells[0].source), f"{path.name}: the first cell states no run time ('runs in about N s')"
    tries = [c for c in cells if c.cell_type == "markdown" and re.match(r"\s*#+ Try this\b", c.source)]
    assert len(tries) >= 3, f"{path.name}: {len(tries)} 'Try this' headings; a '## Try this' and at least two knobs"
