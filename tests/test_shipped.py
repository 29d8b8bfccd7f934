"""The checkpoints the project ships, loaded with the current code: a stale or broken file fails CI here."""
from pathlib import Path

import numpy as np
import pytest
import torch

import codec
from corpus import data
from evaluation import metrics
from corpus import text
from corpus import toy
from corpus import features

ROOT = Path(__file__).resolve().parents[1]
CODEC = ROOT / "checkpoints" / "toy" / "codec.pt"
# Floors a little under what the shipped codec measured on these 4 clips (PESQ 1.662, STOI 0.883; an untrained
# codec gives about 1.03 and 0.4), so a checkpoint that no longer matches the code, or a retrain that went wrong,
# fails here. Rendering and the codec are deterministic, so the measured values repeat exactly.
PESQ_FLOOR, STOI_FLOOR = 1.6, 0.85


def heldout_clips(n=4):
    """n test utterances of held-out voices (unseen timbres, unseen sentences), rendered afresh."""
    plan = toy.plan(seed=0, utts_per_voice=1, heldout_utts=1)
    utts = [u for u in plan["utterances"] if u["split"] == "test"][:: 3][:n]
    return [toy.render(u["text"], toy.Voice(**plan["voices"][u["speaker"]]), u["seed"])[0] for u in utts]


def test_shipped_codec_loads_and_meets_its_quality_floor():
    assert CODEC.exists(), f"{CODEC} is missing: the project ships it (docs/codec.md says how it was trained)"
    assert CODEC.stat().st_size <= 10e6
    model = codec.load_codec(CODEC)
    rows = []
    for wav in heldout_clips():
        _, ids = model.encode(torch.from_numpy(wav)[None])
        rows.append(metrics.codec_metrics(wav, model.decode_ids(ids)[0, :len(wav)].numpy()))
    m = metrics.mean_metrics(rows)
    assert m["pesq"] >= PESQ_FLOOR and m["stoi"] >= STOI_FLOOR, m


LDM = ROOT / "checkpoints" / "toy" / "ldm.pt"
SHIPPED_DRAWN = 192          # the shipped model's corpus: the stock voices and 192 of drawn timbres (Makefile DRAWN)


def heldout_batch(codec_model, phoneme_set, n=6, first=1):
    """A loss batch (data.collate) of n held-out voices rendered afresh, with the shipped codec's IDs: every other
    held-out voice from the `first`-th (first=0: ho00, ho02, ..., ho10, all within the training voices' pitch
    range; first=1 includes ho11_zac, whose 455 Hz lies far above it), each saying a natural-shape sentence of the
    toy generator that no training utterance contains, of the stock corpus nor of the 256-voice corpus the shipped
    model trained on (word-list sentences have a list's intonation, which a model trained before they existed
    never heard)."""
    import random
    from corpus import toy_text
    plan = toy.plan(seed=0)
    training = {u["text"] for u in toy.plan(seed=0, drawn=SHIPPED_DRAWN)["utterances"] if u["split"] == "train"}
    rng, texts = random.Random(2024), []
    while len(texts) < n:
        text = toy_text.sentence(rng)
        if text not in training and text not in texts:
            texts.append(text)
    items = []
    for k, (voice, text) in enumerate(zip(plan["speakers"]["heldout"][first::2][:n], texts)):
        wav, phonemes, durations = toy.render(text, toy.Voice(**plan["voices"][voice]), seed=k)
        f = features.features(wav, phoneme_set.encode(phonemes), durations, voice, text)
        _, codes = codec_model.encode(torch.from_numpy(wav)[None])                     # (1, R, T)
        items.append(dict(id=f"{voice}_{k}", speaker=torch.tensor(0), phonemes=torch.from_numpy(f["phonemes"].astype(np.int64)),
                          durations=torch.from_numpy(f["durations"].astype(np.int64)), lf0=torch.from_numpy(f["lf0"]),
                          voiced=torch.from_numpy(f["voiced"]), codes=codes[0, :, :len(f["lf0"])]))
    return data.collate(items)


def test_shipped_ldm_loads_and_beats_an_untrained_model_on_heldout_voices():
    """Every loss term on held-out voices (unseen timbres, unseen sentences), shipped vs the same architecture
    untrained (same latent statistics), averaged over 4 noise draws. docs/ldm.md has the values."""
    import model as ns2
    from corpus.text import PhonemeSet
    assert LDM.exists(), f"{LDM} is missing: the project ships it (docs/ldm.md says how it was trained)"
    assert LDM.stat().st_size <= 15e6
    shipped, meta = ns2.load_ns2(LDM)
    torch.manual_seed(0)
    untrained = ns2.NaturalSpeech2(shipped.cfg, shipped.rvq.codebooks, shipped.latent_mean, shipped.latent_std).eval()
    batch = heldout_batch(codec.load_codec(ROOT / meta["codec"]["checkpoint"]), PhonemeSet.from_list(meta["phonemes"]))

    def mean_losses(m):
        with torch.no_grad():
            runs = [m.loss(batch, torch.Generator().manual_seed(s)) for s in range(4)]
        return {k: float(sum(r[k] for r in runs) / 4) for k in ("data", "ce_rvq", "dur", "pitch")}

    trained, base = mean_losses(shipped), mean_losses(untrained)
    for k in trained:
        assert trained[k] < RATIO[k] * base[k], (k, trained, base)


# shipped / untrained loss on these held-out clips must be below these ratios (measured: data 0.23, ce_rvq 0.83,
# dur 0.07, pitch 0.04 with the model shipped now)
RATIO = dict(data=0.4, ce_rvq=0.9, dur=0.2, pitch=0.2)


def test_shipped_predictors_are_unbiased_at_inference():
    """In eval mode (dropout off, as sample.py runs them) the pitch and duration predictors must not be biased on
    held-out voices within the training pitch range: ground-truth durations, a prompt cut from the same utterance.
    The first shipped model (predictor dropout 0.5) predicted log-F0 0.2 too low here (F0 about -18%); docs/departures.md
    has the measurements."""
    import model as ns2
    from corpus.text import PhonemeSet
    net, meta = ns2.load_ns2(LDM)
    batch = heldout_batch(codec.load_codec(ROOT / meta["codec"]["checkpoint"]), PhonemeSet.from_list(meta["phonemes"]),
                          first=0)
    e = net.predictor_errors(batch)
    assert abs(e["bias_lf0"]) < BIAS_LF0 and abs(e["bias_logd"]) < BIAS_LOGD, e


BIAS_LF0, BIAS_LOGD = 0.1, 0.1       # |mean signed error|, log units (≈ 10%); measured -0.011 and -0.019


def test_shipped_prompt_queries_are_not_one_mean():
    """§3.3: the m learned queries summarise different parts of the prompt. On prompts of 6 held-out voices the
    shipped model's attention rows must differ from each other (mean pairwise cosine well under 1, which a model
    whose queries all read one mean of the prompt gives) and be sharper than equal weights (entropy well under ln Tp).
    A model trained with queries at init std dim^-1/2 measured cosine 0.996 and entropy 5.30 of 5.48 nats here."""
    import model as ns2
    from evaluation.diagnostics import query_attention
    net, meta = ns2.load_ns2(LDM)
    codec_model = codec.load_codec(ROOT / meta["codec"]["checkpoint"])
    latents = []
    for wav in heldout_clips(6):
        with torch.no_grad():
            z, _ = codec_model.encode(torch.from_numpy(wav[:3 * 16000])[None])      # a 3 s prompt
        latents.append(z[0])
    with torch.no_grad():
        stats, _ = query_attention(net, latents)
    assert stats["cosine"] < QUERY_COSINE and stats["uniform"] - stats["entropy"] > QUERY_ENTROPY_GAP, stats


# measured on the shipped model with these 6 prompts of 3 s: cosine 0.41, entropy 4.25 against ln Tp = 5.27
# (docs/quality.md's 0.43 and 4.50 of 5.48 are `evaluation.metrics attention`'s 12 prompts of 240 frames)
QUERY_COSINE, QUERY_ENTROPY_GAP = 0.8, 0.3


def test_every_cmu_word_reads_into_the_corpus_inventory_and_the_shipped_model():
    """Every 25th alphabetic word of the CMU dictionary (4,700 of ~117k words), phonemized by the toy front end:
    at most 0.1% of them need text.closest_known with the shipped model's inventory (the one `make train-toy`
    trains: corpus/toy_words.json's kept phonemes + pause; measured on all words: 0.064%, docs/toy-corpus.md "Phoneme coverage"),
    and every word reads into something (none left with nothing)."""
    from corpus import toy_text
    phonemes = torch.load(LDM, weights_only=True)["phonemes"]
    assert set(toy_text.coverage_vocabulary()["kept"]) <= set(phonemes)
    r = text.cmu_coverage(phonemes, every=25)
    print(f"\n{r['words']} CMU words: {len(r['fallback'])} need the fallback ({r['fraction']:.3%}): {r['fallback']}")
    assert r["words"] > 4000 and r["fraction"] <= 0.001 and not r["empty"], r["unseen"]


@pytest.mark.slow
def test_everyday_english_with_zero_refusals(tmp_path, capsys):
    """54 lines of everyday English (tests/fixtures/everyday_sentences.txt: numbers, money, abbreviations,
    questions, names, British and American spellings, a reading passage) through sample.py's batch mode with the
    shipped checkpoints, 2 sampler steps: every line is written, none refused, each long enough for its words."""
    import soundfile as sf
    import sample
    lines = [line.strip() for line in (ROOT / "tests" / "fixtures" / "everyday_sentences.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert len(lines) >= 50
    prompt = tmp_path / "prompt.wav"
    sf.write(prompt, heldout_clips(1)[0], 16000)
    rows = [f"{line}\t{prompt}\t{tmp_path / f'{k:02d}.wav'}" for k, line in enumerate(lines)]
    (tmp_path / "jobs.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    code = sample.main(["--list", str(tmp_path / "jobs.tsv"), "--steps", "2", "--batch-size", "16"])
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.startswith("note: phoneme")]
    print(f"\n{len(lines)} lines, {len(notes)} unseen phoneme(s) read through the fallback: {notes}")
    assert code == 0 and "error" not in err, err
    assert len(notes) <= 2, notes                    # the shipped inventory covers everyday English
    for k, line in enumerate(lines):
        seconds = sf.info(tmp_path / f"{k:02d}.wav").duration
        assert seconds >= 0.12 * len(line.split()), (line, seconds)


REAL = ROOT / "checkpoints" / "real"
REAL_VOICES = ROOT / "tests" / "fixtures" / "realspeech" / "LibriTTS" / "test-clean"


def test_shipped_real_speech_codec_beats_the_toy_codec_on_held_out_real_voices():
    """The real-speech codec on the fixture's 4 utterances of 2 held-out speakers (it never heard them). Measured:
    PESQ 2.33, STOI 0.912 (the toy codec: 1.31, 0.777); the floors sit a little under."""
    def quality(path):
        model, rows = codec.load_codec(path), []
        for wav_path in sorted(REAL_VOICES.rglob("*.wav")):
            wav = features.load_audio(wav_path)
            with torch.no_grad():
                _, ids = model.encode(torch.from_numpy(wav)[None])
                rows.append(metrics.codec_metrics(wav, model.decode_ids(ids)[0, :len(wav)].numpy()))
        return metrics.mean_metrics(rows)
    assert (REAL / "codec.pt").stat().st_size <= 10e6
    real, toy_codec = quality(REAL / "codec.pt"), quality(CODEC)
    assert real["pesq"] >= 2.1 and real["stoi"] >= 0.87, real
    assert real["pesq"] > toy_codec["pesq"] + 0.5 and real["stoi"] > toy_codec["stoi"], (real, toy_codec)


def test_shipped_real_speech_model_speaks_with_a_real_prompt(tmp_path, capsys):
    """The real-speech model (g2p_en front end, the real-speech codec it records) through sample.py with a held-out
    real speaker's prompt, 2 sampler steps: the audio is written and long enough for its words."""
    import soundfile as sf
    import sample
    import model as ns2
    _, meta = ns2.load_ns2(REAL / "ldm.pt")
    assert meta["front_end"] == text.EnglishG2P.name and meta["codec"]["checkpoint"] == "checkpoints/real/codec.pt"
    line = "Here is my phone number, if you need anything at all."
    code = sample.main(["--ckpt", str(REAL / "ldm.pt"), "--codec", str(REAL / "codec.pt"), "--text", line,
                        "--prompt", str(next(iter(sorted(REAL_VOICES.rglob("*.wav"))))), "--out", str(tmp_path / "a.wav"),
                        "--steps", "2"])
    assert code == 0, capsys.readouterr().err
    wav, sr = sf.read(tmp_path / "a.wav")
    assert sr == 16000 and np.isfinite(wav).all() and len(wav) / sr >= 0.12 * len(line.split())


def test_shipped_aligner_times_heldout_voices_and_matches_the_toy_model():
    """checkpoints/toy/aligner.pt (section5's default for the toy model): same inventory and front end as the
    shipped model; on 4 freshly rendered held-out clips its phoneme boundaries lie within 40 ms of eSpeak's on
    average (measured with `align.py eval` on the whole test split: 21.6 ms)."""
    import align
    import model as ns2
    from corpus.text import PhonemeSet
    net, inventory = align.load(ROOT / "checkpoints" / "toy" / "aligner.pt")
    _, meta = ns2.load_ns2(LDM)
    assert inventory == meta["phonemes"] and net.front_end == meta["front_end"]
    pset, errors = PhonemeSet.from_list(inventory), []
    plan = toy.plan(seed=0, utts_per_voice=1, heldout_utts=1)
    for u in [u for u in plan["utterances"] if u["split"] == "test"][::3][:4]:
        wav, phonemes, true = toy.render(u["text"], toy.Voice(**plan["voices"][u["speaker"]]), u["seed"])
        ids = np.asarray(pset.encode(phonemes))
        (d,) = align.durations(net, [(ids, align.mel_frames(wav, net.cfg))])
        errors += list(np.abs(np.cumsum(d)[:-1] - np.cumsum(true)[:-1]) * 12.5)
    assert np.mean(errors) < 40, np.mean(errors)


def test_shipped_model_inverts_and_regenerates_a_heldout_source():
    """§5's source-aware step on the shipped model: a held-out clip carried forward to z_1 (std near 1, as the
    reverse process expects), then back with the same condition, lands far closer to the source than sampling from
    fresh noise does (measured on 2 clips, 150 steps: 0.22 against 0.83 relative L1)."""
    import model as ns2
    from corpus.text import PhonemeSet
    m, meta = ns2.load_ns2(LDM)
    b = heldout_batch(codec.load_codec(ROOT / meta["codec"]["checkpoint"]), PhonemeSet.from_list(meta["phonemes"]),
                      n=1, first=0)
    z = m.rvq.decode(b["codes"])                                              # (1, D, T)
    args = (b["phonemes"], z, z, b["durations"], b["lf0"])
    z1 = m.invert(*args, steps=100)
    assert 0.7 < float(z1.std()) < 1.4
    rel = lambda out: float((out["latent"] - z).abs().mean() / z.abs().mean())
    back = m.generate(b["phonemes"], z, steps=100, prosody=ns2.Prosody(b["durations"], b["lf0"]), start=z1)
    fresh = m.generate(b["phonemes"], z, steps=100, prosody=ns2.Prosody(b["durations"], b["lf0"]), seeds=[0])
    assert rel(back) < 0.35 and rel(fresh) > 0.6, (rel(back), rel(fresh))
