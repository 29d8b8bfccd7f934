"""The notebooks: each is committed with its outputs (plots visible on the repository page), under 2 MB, and not
stale: executed afresh (from the notebooks/ folder, as a reader runs it) it raises nothing, draws the same number of
figures in every cell, and prints the same numbers within a small tolerance (CPU threads may change the last digits).

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
