"""The commands that README.md and docs/ show run what they say: every `python ...`, `torchrun ...` and `make ...`
line of their bash blocks is checked against the command's own parser (flags, choices, types, the typed `--key=value`
overrides of training), without running it; the README's input files ship with the project (or an earlier command
of the same page writes them); and the README's zero-shot examples run on the shipped files.

Lines that only a shell can check are left out: a `...` placeholder, a shell variable ($T), a loop.
"""
import importlib
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
PYTHONS = {"python", "python3", ".venv/bin/python"}
# flags whose value is a file the command reads (the README's must ship or be written by an earlier line)
INPUT_FLAGS = {"--prompt", "--ref", "--est", "--score", "--convert", "--enhance", "--pitch-from", "--ckpt"}


def bash_blocks(text: str):
    """The bodies of the ```bash fenced blocks of a markdown text."""
    lang, body = None, []
    for line in text.splitlines():
        fence = re.match(r"^\s*```(\S*)", line)
        if fence and lang is None:
            lang, body = fence.group(1), []
        elif fence:
            if lang in ("bash", "sh"):
                yield "\n".join(body)
            lang = None
        elif lang is not None:
            body.append(line)


def split_commands(line: str) -> list:
    """The token lists of the commands of one shell line (`a && b; c`), comments dropped."""
    lex = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
    lex.whitespace_split, lex.commenters = True, "#"
    parts = [[]]
    for token in lex:
        if token in (";", "&&", "||", "|"):
            parts.append([])
        else:
            parts[-1].append(token)
    return [p for p in parts if p]


def commands(page: Path) -> list:
    """(page, tokens) of each checkable command line of the page, in order."""
    found = []
    for block in bash_blocks(page.read_text()):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            if "..." in line or "$" in line:
                continue
            for tokens in split_commands(line):
                while tokens and (re.fullmatch(r"[A-Z_]+=\S*", tokens[0]) or tokens[0] == "nice"):
                    tokens = tokens[3:] if tokens[0] == "nice" and tokens[1:2] == ["-n"] else tokens[1:]
                if tokens and tokens[0] in PYTHONS | {"make", "torchrun"} and tokens[1:2] != ["-c"]:
                    found.append(tokens)
    return found


def program(tokens: list) -> tuple:
    """(module name, its arguments) of a python/torchrun command line."""
    args = [t for t in tokens[1:] if not t.startswith("--nproc")] if tokens[0] == "torchrun" else tokens[1:]
    if args[0] == "-m":
        return args[1], args[2:]
    return args[0].removesuffix(".py").replace("/", "."), args[1:]


def check_arguments(module: str, argv: list) -> None:
    """Parse `argv` as `module` would before doing any work; raise on anything it would refuse."""
    mod = importlib.import_module(module)
    if module == "train":
        args, extra = mod.build_parser().parse_known_args(argv)
        if args.stage == "export":
            assert not extra, f"export takes no overrides: {extra}"
        else:
            mod.stage_settings(args, extra)
    elif module == "evaluation.ablate":
        mod.check(mod.parse(argv))                            # the switch and the common overrides, typed
    elif hasattr(mod, "parse_args"):
        mod.parse_args(argv)
    else:
        mod.build_parser().parse_args(argv)


ALL = [(page, tokens) for page in PAGES for tokens in commands(page)]


def test_the_pages_show_commands():
    readme = [t for p, t in ALL if p.name == "README.md"]
    assert len(readme) >= 15 and len(ALL) >= 80, (len(readme), len(ALL))


@pytest.mark.parametrize("page, tokens", [x for x in ALL if x[1][0] != "make"],
                         ids=lambda x: x.name if isinstance(x, Path) else " ".join(x)[:80])
def test_each_command_parses(page, tokens, capsys):
    module, argv = program(tokens)
    if not (ROOT / (module.replace(".", "/") + ".py")).exists():
        assert importlib.util.find_spec(module) is not None, f"{page.name}: no module {module}"
        return                                                # pip, pytest, jupyter: not this project's parsers
    try:
        check_arguments(module, argv)
    except SystemExit as e:                                   # argparse's refusal (0: --help)
        if e.code:
            pytest.fail(f"{page.name}: `{' '.join(tokens)}` is refused: {capsys.readouterr().err.strip()[-300:]}")


def test_each_make_target_exists():
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
    wrong = [f"{p.name}: make {t[1]}" for p, t in ALL if t[0] == "make" and len(t) > 1 and "=" not in t[1]
             and t[1] not in targets]
    assert not wrong, wrong


def test_the_readme_reads_files_that_ship():
    written, missing = set(), []
    for tokens in [t for p, t in ALL if p.name == "README.md"]:
        for flag, value in zip(tokens, tokens[1:]):
            if flag in INPUT_FLAGS and not (ROOT / value).exists() and \
                    not any(value == w or value.startswith(w.rstrip("/") + "/") for w in written):
                missing.append(f"{flag} {value}")
            if flag in ("--out", ">"):
                written.add(value)
    assert not missing, f"README commands read files that neither ship nor an earlier command writes: {missing}"


@pytest.mark.slow                                             # three sample.py runs: about 40 s
@pytest.mark.parametrize("ckpt, prompt", [("checkpoints/toy/ldm.pt", "examples/toy_prompt.wav"),
                                          ("checkpoints/real/ldm.pt", "examples/libri_female_4640.wav"),
                                          ("checkpoints/real/ldm.pt", "examples/libri_male_2136.wav")])
def test_the_example_prompts_speak_on_a_fresh_clone(ckpt, prompt, tmp_path):
    out = tmp_path / "out.wav"
    r = subprocess.run([sys.executable, "sample.py", "--ckpt", ckpt, "--prompt", prompt, "--text",
                        "Please bring the violin.", "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and out.stat().st_size > 10_000, r.stderr[-1000:]
