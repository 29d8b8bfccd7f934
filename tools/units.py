"""How readable the source is, in the numbers docs/architecture.md sets: files over 450 lines, functions over 60
lines or over 8 parameters, and blocks of 6 or more lines repeated anywhere (the same lines, or the same shape with
other names), tests and notebooks excluded.

    python -m tools.units            # a table of every unit over a limit, and the repeated blocks; exit 1 if any
"""
from __future__ import annotations

import argparse
import ast
import io
import keyword
import sys
import tokenize
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FILE, MAX_FUNCTION, MAX_PARAMS, BLOCK = 450, 60, 8, 6


def source_files() -> list[Path]:
    files = list(ROOT.glob("*.py"))
    for folder in ("corpus", "evaluation", "training", "tools"):
        files += sorted((ROOT / folder).glob("*.py"))
    return sorted(files)


def long_units(path: Path) -> list[str]:
    """One line per limit this file breaks."""
    text = path.read_text(encoding="utf-8")
    rel, out = path.relative_to(ROOT), []
    if text.count("\n") > MAX_FILE:
        out.append(f"{rel}: {text.count(chr(10))} lines (limit {MAX_FILE})")
    for n in ast.walk(ast.parse(text)):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = n.end_lineno - n.lineno + 1
            a = n.args
            params = [x for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
            if length > MAX_FUNCTION:
                out.append(f"{rel}:{n.lineno} {n.name}: {length} lines (limit {MAX_FUNCTION})")
            if len(params) > MAX_PARAMS:
                out.append(f"{rel}:{n.lineno} {n.name}: {len(params)} parameters (limit {MAX_PARAMS})")
    return out


def shape_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, the line's shape) for every line of code: names become N, strings S, numbers 0; comments,
    docstrings and blank lines dropped."""
    lines: dict[int, list[str]] = defaultdict(list)
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    prev = None
    for tok in tokens:
        if tok.type == tokenize.NAME:
            word = tok.string if keyword.iskeyword(tok.string) else "N"
        elif tok.type == tokenize.STRING:
            if prev in (None, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.NL):
                prev = tok.type                                 # a docstring or a bare string statement
                continue
            word = "S"
        elif tok.type == tokenize.NUMBER:
            word = "0"
        elif tok.type == tokenize.OP:
            word = tok.string
        else:
            if tok.type not in (tokenize.COMMENT, tokenize.NL):
                prev = tok.type
            continue
        prev = tok.type
        lines[tok.start[0]].append(word)
    return [(k, " ".join(v)) for k, v in sorted(lines.items()) if v]


def repeated_blocks(files: list[Path] | None = None, root: Path = ROOT) -> list[str]:
    """Windows of BLOCK consecutive code lines whose shapes occur at two or more places (in `files`, default every
    source file), merged into runs."""
    seen = defaultdict(list)
    for path in files or source_files():
        shapes = shape_lines(path)
        for i in range(len(shapes) - BLOCK + 1):
            window = shapes[i:i + BLOCK]
            if sum(len(s.split()) for _, s in window) < 6 * BLOCK:     # trivial lines (")", "return N") only
                continue
            seen[tuple(s for _, s in window)].append((path.relative_to(root), window[0][0], window[-1][0]))
    runs = {}
    for places in seen.values():
        if len(places) > 1:
            runs.setdefault(places[0][:2], places)
    out, reported = [], set()
    for places in runs.values():
        first = places[0]
        if (first[0], first[1] - 1) in reported:                  # a longer run already reported
            reported.add(first[:2])
            continue
        reported.add(first[:2])
        out.append(" = ".join(f"{p}:{a}-{b}" for p, a, b in places))
    return out


def main(argv=None) -> int:
    argparse.ArgumentParser(prog="python -m tools.units",
                            description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 2)[2],
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    over = [line for path in source_files() for line in long_units(path)]
    repeats = repeated_blocks()
    print(f"{len(source_files())} files; limits: file {MAX_FILE} lines, function {MAX_FUNCTION} lines and "
          f"{MAX_PARAMS} parameters, no repeated block of {BLOCK} lines")
    print(f"\nover a limit: {len(over)}")
    for line in over:
        print(f"  {line}")
    print(f"\nrepeated blocks of {BLOCK}+ lines: {len(repeats)}")
    for line in repeats:
        print(f"  {line}")
    return 1 if over or repeats else 0


if __name__ == "__main__":
    sys.exit(main())
