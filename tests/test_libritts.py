"""LibriTTS reader on a small fixture in the official layout (24 kHz audio, MFA-style TextGrids)."""
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from corpus import data
from corpus import libritts
from corpus import toy
from corpus.text import OPTIONAL_PAUSE, g2p_phonemes, phonemize_en, PUNCTUATION
from corpus import features
from dataclasses import replace
from training.presets import preset

TINY_LIBRITTS_ALIGNER = replace(preset("libritts").aligner, steps=10, dim=16, anchor_utts=0)

ROOT = data.Path(__file__).resolve().parents[1]


def write_textgrid(path, duration, phones):
    """A long-format TextGrid like MFA's: words + phones tiers; phones spread evenly after 0.1 s of silence."""
    edges = np.linspace(0.1, duration - 0.1, len(phones) + 1)
    items = [(0.0, 0.1, "")] + [(a, b, p) for a, b, p in zip(edges[:-1], edges[1:], phones)] + \
            [(duration - 0.1, duration, "sil")]
    iv = "".join(f'        intervals [{i + 1}]:\n            xmin = {a}\n            xmax = {b}\n'
                 f'            text = "{t}"\n' for i, (a, b, t) in enumerate(items))
    path.write_text('File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = %s\ntiers? <exists>\n'
                    'size = 2\nitem []:\n    item [1]:\n        class = "IntervalTier"\n        name = "words"\n'
                    '        xmin = 0\n        xmax = %s\n        intervals: size = 0\n    item [2]:\n'
                    '        class = "IntervalTier"\n        name = "phones"\n        xmin = 0\n        xmax = %s\n'
                    '        intervals: size = %d\n%s' % (duration, duration, duration, len(items), iv))


@pytest.fixture(scope="module")
def libritts_fixture(tmp_path_factory):
    root, grids = tmp_path_factory.mktemp("LibriTTS"), tmp_path_factory.mktemp("mfa")
    voices = toy.make_voices(toy.HELDOUT_VARIANTS, 0, "x")
    rows = [("train-clean-100", "1001", "10", "The farmer fixed the wagon."),
            ("train-clean-100", "1001", "10", "Did Martha read 3 books?"),
            ("train-clean-100", "1002", "20", "Zoe chose the purple cushion."),
            ("dev-clean", "1003", "30", "A quiet dolphin joined the voyage."),
            ("test-clean", "1004", "40", "Grace measured the frozen river."),
            ("train-clean-100", "1002", "20", "This one has an unaligned word."),     # spn
            ("train-clean-100", "1002", "20", "This one is clipped."),                # clipped audio
            ("train-clean-100", "1002", "20", "This one was never aligned.")]         # no TextGrid
    for k, (subset, spk, chap, text) in enumerate(rows):
        folder = root / subset / spk / chap
        folder.mkdir(parents=True, exist_ok=True)
        uid = f"{spk}_{chap}_{k:06d}_000000"
        wav, _, _ = toy.render(text, voices[int(spk) % len(voices)], seed=k)
        wav = features.resample(wav, 16000, 24000)
        if "clipped" in text:
            wav = np.clip(wav * 50, -1, 1)
        sf.write(folder / f"{uid}.wav", wav, 24000)
        (folder / f"{uid}.normalized.txt").write_text(text)
        phones = [p for p in phonemize_en(text) if p not in PUNCTUATION]
        if "unaligned" in text:
            phones[3] = "spn"
        if "never aligned" not in text:
            write_textgrid(grids / f"{uid}.TextGrid", len(wav) / 24000, phones)
    return root, grids


def test_prepare_libritts(libritts_fixture, tmp_path):
    root, grids = libritts_fixture
    manifest = libritts.prepare(root, tmp_path, ["train-clean-100", "dev-clean", "test-clean"], grids, jobs=1)
    assert manifest["front_end"] == "g2p_en-arpabet"
    assert {u["split"] for u in manifest["utterances"]} == {"train", "valid", "test"}
    assert manifest["speakers"] == {"train": ["1001", "1002", "1003"], "heldout": ["1004"]}
    reasons = {s["id"].split("_")[2]: s["reason"] for s in manifest["skipped"]}
    assert "spn" in reasons["000005"] and "clipped" in reasons["000006"] and "TextGrid" in reasons["000007"]
    pset = data.PhonemeSet.from_list(manifest["phonemes"])
    for u in manifest["utterances"]:
        f = features.load_features(tmp_path / "feats" / f"{u['id']}.npz")
        n16 = int(round(sf.info(features.audio_path(tmp_path, u, manifest["roots"])).frames * 16000 / 24000))
        assert f["durations"].sum() == len(f["lf0"]) == u["n_frames"] == n16 // features.HOP
        ph = pset.decode(f["phonemes"])
        assert ph[0] == ph[-1] == features.PAUSE and all(p == features.PAUSE or p[:2].isupper() for p in ph)
    past = next(u for u in manifest["utterances"] if "read" in u["text"])
    assert "EH1" in pset.decode(features.load_features(tmp_path / "feats" / f"{past['id']}.npz")["phonemes"])


def test_textgrid_without_phones_tier(tmp_path):
    (tmp_path / "x.TextGrid").write_text('File type = "ooTextFile"\nitem [1]:\n name = "words"\n')
    with pytest.raises(ValueError, match="phones"):
        libritts.read_textgrid_phones(tmp_path / "x.TextGrid")


def test_cli_libritts_with_textgrids(libritts_fixture, tmp_path):
    root, grids = libritts_fixture
    r = subprocess.run([sys.executable, "-m", "corpus.data", "prepare", "--corpus", "libritts", "--root", str(root),
                        "--textgrids", str(grids), "--out", str(tmp_path), "--jobs", "1"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "held out" in r.stdout and "3 utterances skipped" in r.stdout


def test_g2p_phonemes_frames_the_sentence_with_pauses():
    ph = g2p_phonemes("Well, then... is it 3?")
    assert ph[0] == ph[-1] == features.PAUSE
    assert all(not (a == b == features.PAUSE) for a, b in zip(ph, ph[1:]))      # no two pauses in a row
    assert ph.count(features.PAUSE) == 4 and ph[-4:] == ["TH", "R", "IY1", features.PAUSE]


def test_g2p_phonemes_with_optional_pauses_between_words():
    ph = g2p_phonemes("Well, then... is it 3?", word_pauses=True)
    assert [p for p in ph if p != OPTIONAL_PAUSE] == g2p_phonemes("Well, then... is it 3?")
    assert ph.count(OPTIONAL_PAUSE) == 2                      # is_it_three: none next to punctuation or the ends
    assert ph[ph.index("IH1") + 2] == OPTIONAL_PAUSE


def test_anchor_items_are_espeak_speech_read_by_g2p():
    import align
    cfg = align.AlignerConfig(n_mels=20, n_fft=256)
    items = libritts.anchor_items(3, cfg, jobs=1)
    pset = libritts.inventory()
    assert len(items) == 3
    for ids, mel in items:
        ph = pset.decode(ids)
        assert ph[0] == ph[-1] == features.PAUSE and "_?" not in ph and all(p in pset.to_list() for p in ph)
        assert mel.shape[0] == 20 and mel.shape[1] >= len(ids)
    assert libritts.anchor_items(0, cfg) == []


REAL = ROOT / "tests" / "fixtures" / "realspeech" / "LibriTTS"


@pytest.fixture(scope="module")
def real_with_broken(tmp_path_factory):
    """The real-speech fixture plus one broken entry of every kind prepare must skip."""
    import shutil
    root = tmp_path_factory.mktemp("real") / "LibriTTS"
    shutil.copytree(REAL, root)
    folder = root / "train-clean-100" / "9999" / "1"
    folder.mkdir(parents=True)
    good, _ = sf.read(next(REAL.glob("train-clean-100/1012/1/*.wav")), dtype="float32")
    broken = {
        "unreadable": (b"this is not audio", "A sentence."),
        "empty_audio": (np.zeros(0, np.float32), "A sentence."),
        "nonfinite": (np.where(np.arange(len(good)) == 500, np.nan, good).astype(np.float32), "A sentence."),
        "no_transcript": (good, None),
        "empty_transcript": (good, "   "),
        "unpronounceable": (good, "?! ... --"),
        "too_short": (good[:1600], "This sentence is much too long to be said in a tenth of a second."),
    }
    reasons = {}
    for k, (name, (wav, text)) in enumerate(broken.items()):
        uid = f"9999_1_{k:06d}_000000"
        reasons[uid] = name
        if isinstance(wav, bytes):
            (folder / f"{uid}.wav").write_bytes(wav)
        else:
            sf.write(folder / f"{uid}.wav", wav, 16000, subtype="FLOAT")
        if text is not None:
            (folder / f"{uid}.normalized.txt").write_text(text)
    return root, reasons


def test_prepare_with_the_built_in_aligner_skips_and_reports_broken_entries(real_with_broken, tmp_path):
    root, reasons = real_with_broken
    manifest = libritts.prepare(root, tmp_path, ["train-clean-100", "test-clean"], jobs=1,
                                aligner=replace(preset("libritts").aligner, steps=30, dim=32, anchor_utts=3))
    got = {s["id"]: s["reason"] for s in manifest["skipped"]}
    assert set(got) == set(reasons)
    expect = dict(unreadable="cannot read", empty_audio="empty", nonfinite="NaN", no_transcript="transcript",
                  empty_transcript="empty transcript", unpronounceable="nothing to pronounce", too_short="too short")
    for uid, kind in reasons.items():
        assert expect[kind] in got[uid], (kind, got[uid])
    assert len(manifest["utterances"]) == 12 and manifest["speakers"]["heldout"] == ["1030", "1156"]
    pset = data.PhonemeSet.from_list(manifest["phonemes"])
    for u in manifest["utterances"]:
        f = features.load_features(tmp_path / "feats" / f"{u['id']}.npz")
        assert f["durations"].sum() == len(f["lf0"]) == u["n_frames"] and (f["durations"] >= 1).all()
        got, full = pset.decode(f["phonemes"]), g2p_phonemes(u["text"], word_pauses=True)
        assert [p for p in got if p != features.PAUSE] == [p for p in full if p not in (features.PAUSE, OPTIONAL_PAUSE)]
        assert got.count(features.PAUSE) >= g2p_phonemes(u["text"]).count(features.PAUSE)   # optional ones kept or not
    assert (tmp_path / "aligner.pt").exists()
    from evaluation import alignment
    u = manifest["utterances"][0]
    assert alignment.main(["plot", "--ckpt", str(tmp_path / "aligner.pt"), "--wav",
                           str(features.audio_path(tmp_path, u, manifest["roots"])), "--text", u["text"],
                           "--out", str(tmp_path / "alignment.png")]) == 0
    assert (tmp_path / "alignment.png").stat().st_size > 10_000


def test_prepare_resumes_where_it_stopped(tmp_path):
    subsets = ["train-clean-100", "test-clean"]
    first = libritts.prepare(REAL, tmp_path, subsets, jobs=1, aligner=TINY_LIBRITTS_ALIGNER)
    aligner_mtime = (tmp_path / "aligner.pt").stat().st_mtime_ns
    victim = first["utterances"][3]["id"]
    (tmp_path / "feats" / f"{victim}.npz").unlink()                           # interrupted in the features stage
    with open(tmp_path / "scan.jsonl", "a") as f:
        f.write('{"id": "cut sh')                                              # ... and a scan line cut short
    again = libritts.prepare(REAL, tmp_path, subsets, jobs=1, aligner=TINY_LIBRITTS_ALIGNER)
    assert (tmp_path / "aligner.pt").stat().st_mtime_ns == aligner_mtime     # the fitted aligner is kept
    assert [u["id"] for u in again["utterances"]] == [u["id"] for u in first["utterances"]]
    assert (tmp_path / "feats" / f"{victim}.npz").exists()


def test_cli_libritts_bad_root_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "corpus.data", "prepare", "--corpus", "libritts", "--root", str(tmp_path / "nope"),
                        "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr


def test_real_speech_end_to_end_on_tiny_configs(tmp_path):
    """The real-speech recipe on the fixture: prepare (g2p_en + built-in aligner) -> codec -> encode -> ldm -> sample,
    each stage on its `tiny` config for a few steps."""
    import soundfile as sf
    import sample
    import train
    from training import codec_stage, presets
    from training import ldm_stage as train_ldm
    cache = tmp_path / "cache"
    manifest = libritts.prepare(REAL, cache, ["train-clean-100", "test-clean"], jobs=1,
                                aligner=TINY_LIBRITTS_ALIGNER)
    data.write_manifest(cache, manifest)
    assert {u["split"] for u in manifest["utterances"]} == {"train", "valid", "test"}     # valid held out of train
    tcfg = presets.CodecTrainConfig(**{**vars(presets.preset("tiny").codec_train), "steps": 2, "val_every": 100})
    codec_stage.train_codec(presets.preset("tiny").codec, tcfg, cache, tmp_path / "codec_run", progress=False)
    train.export(tmp_path / "codec_run" / "last.pt", tmp_path / "codec.pt")
    data.encode_cache(cache, tmp_path / "codec.pt")
    lcfg = presets.LDMTrainConfig(**{**vars(presets.preset("tiny").ldm_train), "steps": 2, "val_every": 100})
    train_ldm.train_ldm(train_ldm.LDMJob("tiny", cache, tmp_path / "codec.pt", tmp_path / "ldm_run"), lcfg, progress=False)
    train.export(tmp_path / "ldm_run" / "last.pt", tmp_path / "ldm.pt")
    prompt = next(REAL.glob("test-clean/*/1/*.wav"))
    code = sample.main(["--ckpt", str(tmp_path / "ldm.pt"), "--codec", str(tmp_path / "codec.pt"), "--text",
                        "Here is my phone number.", "--prompt", str(prompt), "--out", str(tmp_path / "out.wav"),
                        "--steps", "2"])
    assert code == 0 and sf.info(tmp_path / "out.wav").frames > 0
