"""The demo: zero-shot speech synthesis for every held-out voice of the toy corpus, scored as the paper does (§4.4).

Stages (each runnable on its own; `make demo` runs them all):
    corpus   the toy corpus's valid + test splits and their features      python -m evaluation.demo --stage corpus
    codec    the shipped codec on held-out voices (evaluation/metrics.py codec)         python -m evaluation.demo --stage codec
    tts      zero-shot TTS with the shipped codec + diffusion model      python -m evaluation.demo --stage tts
    sing     a sung line (§5): the first line of examples/twinkle.txt      python -m evaluation.demo --stage sing
             in a held-out voice at 2 x --steps, F0 against the score (evaluation/demo_section5.py sing: the song, more voices)
    real     the real-voice model in two native voices it never heard (examples/; evaluation/demo_real.py)

The tts stage, per held-out voice (never heard in training): the prompt is one test utterance of that voice, the
texts are `--per-voice` other test sentences (sentences no training utterance contains); the toy corpus renders the
same sentence in the same voice as ground truth. Three systems are scored on the same items:
    ground truth        the eSpeak rendering (upper bound)
    codec resynthesis   ground truth through the codec (the upper bound of any latent model on this codec)
    the model           --ldm (repeat --ldm LABEL=PATH to add ablation rows)
--oracle adds the (first) model with the ground truth's durations, then durations + pitch, in place of the prior's.
Metrics (evaluation/metrics.py, evaluation/asr.py): SIM to the prompt and to the ground truth (Resemblyzer), speaker-ID accuracy among the
held-out voices (closest prompt), PER of the toy phoneme recogniser, WER of pocketsphinx (--wer; meaningless on
eSpeak voices), MCD against ground truth, pitch mean/std difference to the prompt (Table 4), pitch correlation/RMSE
to ground truth (Table 12), phoneme-duration difference to the prompt and correlation to ground truth.
Writes wavs, one spectrogram + pitch plot per item, results.json and results.md to --out. Sentences are synthesised
in batches (sample.Synthesizer.many: the same audio as one at a time).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import diffusion
import sample
import section5
from corpus import features
from evaluation.heldout import resynthesise, vowels_voiced
from model import Sampling

SR = features.SAMPLE_RATE
# The toy model's goals on this evaluation (84 sentences, default sampler; docs/quality.md)
TARGETS = dict(speaker_id=0.75, sim_prompt=0.78, per=0.18, pitch_mean_rel=0.06, vowels_voiced=0.80)


def pick_items(root: Path, per_voice: int, split: str = "test") -> list:
    """[(speaker, prompt_utt, [target_utts])] for every held-out speaker of `split` (test, or the second held-out
    set, confirm), by utterance ID."""
    from corpus import data
    by_spk = {}
    for u in sorted((u for u in data.read_manifest(root)["utterances"] if u["split"] == split), key=lambda u: u["id"]):
        by_spk.setdefault(u["speaker"], []).append(u)
    if not by_spk:
        raise ValueError(f"{root} has no {split} split (held-out voices): python -m corpus.data prepare --corpus toy "
                         f"--out {root} --splits {split}")
    return [(s, us[0], us[1:1 + per_voice]) for s, us in by_spk.items()]


def plot_item(path: Path, prompt, gt, gen, title: str):
    """Log-mel spectrograms of prompt, ground truth and generated speech, and their F0 contours."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import codec as codec_lib
    from evaluation import metrics as ev
    fig, axes = plt.subplots(4, 1, figsize=(9, 8), gridspec_kw=dict(height_ratios=[1, 1, 1, 1.2]))
    for ax, (name, wav) in zip(axes, (("prompt", prompt), ("ground truth", gt), ("generated", gen))):
        lm = codec_lib.log_mel(torch.from_numpy(wav)[None], 1024, 200)[0].numpy()
        ax.imshow(lm, origin="lower", aspect="auto", extent=(0, len(wav) / SR, 0, lm.shape[0]), cmap="magma",
                  vmin=-10, vmax=lm.max())
        ax.set_ylabel(f"{name}\nmel band")
    for name, wav, style in (("ground truth", gt, "-"), ("generated", gen, "-"), ("prompt", prompt, ":")):
        f0, v = ev.f0_hz(wav)
        f0 = np.where(v, f0, np.nan)
        axes[3].plot(np.arange(len(f0)) * 0.0125, f0, style, label=name)
    axes[3].set_ylabel("F0 (Hz)")
    axes[3].set_xlabel("time (s)")
    axes[3].legend(loc="upper right", fontsize=8)
    axes[0].set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def embed_or_none(wav):
    """Speaker embedding, or None when the speaker encoder finds too little speech (scored as a miss, not skipped)."""
    from evaluation import metrics as ev
    try:
        return ev.speaker_embedding(wav)
    except ValueError:
        return None


def score(system: dict, items: list, enrolled: dict, rec, wer: bool, progress: bool = False) -> tuple[dict, list]:
    """Metrics of one system: (means over items, one row per item); system = {"wavs": [...], "durations": [...]}.
    With `wer`, each row also holds the words pocketsphinx heard (`heard`); `progress`: a bar over the items."""
    from tqdm import tqdm
    from evaluation import asr
    from evaluation import metrics as ev
    rows = []
    for k, it in enumerate(tqdm(items, desc=f"score {system['name']}", unit="item", disable=not progress)):
        wav, emb = system["wavs"][k], system["embs"][k]
        sim = (lambda ref: 0.0 if emb is None else ev.cosine(emb, ref))   # no speech found: counted as 0
        r = dict(sim_prompt=sim(it["prompt_emb"]), no_speech=float(emb is None),
                 speaker_hit=ev.speaker_id_accuracy([emb], [it["speaker"]], enrolled))
        if system["name"] != "ground truth":
            r.update(sim_gt=sim(it["gt_emb"]), **ev.prosody_vs_ground_truth(wav, it["gt"]))     # with MCD
        pr = ev.prosody_vs_prompt(wav, it["prompt"])
        r.update(pr, pitch_mean_rel=pr["pitch_mean_diff"] / it["prompt_f0_mean"])
        dur = system["durations"][k] if system.get("durations") else it["gt_durations"]
        r.update(duration_mean_diff=abs(np.mean(dur) - np.mean(it["prompt_durations"])),
                 duration_std_diff=abs(np.std(dur) - np.std(it["prompt_durations"])))
        if system.get("durations") and len(dur) == len(it["gt_durations"]):
            r.update(duration_corr=ev.pearson(dur, it["gt_durations"]))
        r["length_ratio"] = len(wav) / len(it["gt"])
        f0, voiced = ev.f0_hz(wav)
        r["vowels_voiced"] = vowels_voiced(wav, it["phonemes"], dur)
        r.update(unvoiced=float(not voiced.any()), voiced_frac=float(voiced.mean()),   # no F0: pitch metrics NaN
                 pitch_mean_signed=float(f0[voiced].mean() / it["prompt_f0_mean"] - 1) if voiced.any() else np.nan)
        if system.get("prior_f0"):                             # what the pitch predictor asked for
            r["prior_f0_signed"] = float(np.mean(system["prior_f0"][k]) / it["prompt_f0_mean"] - 1)
        if wer:
            r["heard"] = asr.transcribe(wav)
        rows.append(r)
    out = {key: float(np.nanmean([r[key] for r in rows if key in r])) for key in {k for r in rows for k in r}
           if key not in ("speaker_hit", "pitch_mean_signed", "prior_f0_signed", "heard")}
    out["speaker_id"] = float(np.mean([r["speaker_hit"] for r in rows]))     # closed-set identification accuracy
    if rec is not None:
        out["per"] = asr.phoneme_error_rate([it["phonemes"] for it in items], [rec(w) for w in system["wavs"]])
    if wer:
        out["wer"] = asr.word_error_rate([it["text"] for it in items], [r["heard"] for r in rows])
    return out, rows


def per_voice_table(items: list, gt_rows: list, rows: list, train_f0: tuple) -> str:
    """One row per held-out voice for one system: where zero-shot synthesis works and where it does not."""
    lines = ["| held-out voice | prompt F0 Hz | spk-ID ↑ | SIM prompt ↑ | predicted F0 vs prompt | audio F0 vs prompt | "
             "voiced frames (GT → model) |", "|---|---|---|---|---|---|---|"]
    for voice in dict.fromkeys(it["speaker"] for it in items):
        k = [i for i, it in enumerate(items) if it["speaker"] == voice]
        mean = lambda key, rs: float(np.nanmean([rs[i][key] for i in k]))
        f0 = items[k[0]]["prompt_f0_mean"]
        flag = " (outside training range)" if not train_f0[0] <= f0 <= train_f0[1] else ""
        prior = f"{mean('prior_f0_signed', rows):+.1%}" if "prior_f0_signed" in rows[k[0]] else "—"
        lines.append(f"| {voice} | {f0:.0f}{flag} | {mean('speaker_hit', rows):.2f} | {mean('sim_prompt', rows):.3f} | "
                     f"{prior} | {mean('pitch_mean_signed', rows):+.1%} | {mean('voiced_frac', gt_rows):.0%} → "
                     f"{mean('voiced_frac', rows):.0%} |")
    lines.append(f"\nTraining voices' mean F0: {train_f0[0]:.0f}–{train_f0[1]:.0f} Hz. Predicted F0: the pitch predictor's "
                 "output (mean over frames); audio F0: measured by PyWorld on the output's voiced frames.")
    return "\n".join(lines)


def training_f0_range(root: Path) -> tuple:
    """(lowest, highest) mean F0 in Hz over the training voices, measured on their validation utterances (the
    same voices as the training split; the demo builds only the valid and test splits)."""
    from corpus import data
    per_voice = {}
    for u in data.read_manifest(root)["utterances"]:
        if u["split"] == "valid":
            f = features.load_features(root / "feats" / f"{u['id']}.npz")
            per_voice.setdefault(u["speaker"], []).extend(np.exp(f["lf0"][f["voiced"].astype(bool)]))
    means = [float(np.mean(v)) for v in per_voice.values() if v]
    return min(means), max(means)


COLUMNS = [("speaker_id", "spk-ID ↑", ".2f"), ("sim_prompt", "SIM prompt ↑", ".3f"), ("sim_gt", "SIM GT ↑", ".3f"),
           ("per", "PER ↓", ".3f"), ("wer", "WER ↓", ".2f"), ("mcd", "MCD dB ↓", ".2f"),
           ("pitch_mean_diff", "ΔF0 mean Hz ↓", ".1f"), ("pitch_mean_rel", "ΔF0 mean % ↓", ".1%"),
           ("pitch_std_diff", "ΔF0 std Hz ↓", ".1f"), ("pitch_corr", "F0 corr GT ↑", ".2f"),
           ("pitch_rmse", "F0 RMSE GT Hz ↓", ".1f"), ("duration_mean_diff", "Δdur mean ↓", ".2f"),
           ("duration_corr", "dur corr GT ↑", ".2f"), ("length_ratio", "length / GT", ".2f"),
           ("vowels_voiced", "vowels voiced ↑", ".0%"),
           ("unvoiced", "no F0 found", ".0%")]


def format_table(results: dict, columns: list = COLUMNS) -> str:
    """A markdown table: one row per system, one column per (key, header, format) of `columns` that some system
    has; "—" where a system lacks it."""
    cols = [c for c in columns if any(c[0] in r for r in results.values())]
    lines = ["| system | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(format(r[k], f) if k in r else "—" for k, _, f in cols) + " |")
    return "\n".join(lines)


def check_targets(results: dict, model: str) -> list:
    """The toy model's goals (TARGETS) -> lines 'met/MISSED goal: value (ground truth: value)'."""
    gt, m = results["ground truth"], results[model]
    checks = [("speaker-ID", "speaker_id", ">="), ("SIM prompt", "sim_prompt", ">="), ("PER", "per", "<="),
              ("mean-F0 difference to the prompt", "pitch_mean_rel", "<="),
              ("vowel frames voiced", "vowels_voiced", ">=")]
    lines = []
    for name, key, op in checks:
        if key not in m or np.isnan(m[key]):
            continue
        ok = m[key] >= TARGETS[key] if op == ">=" else m[key] <= TARGETS[key]
        reference = f" (ground truth {gt[key]:.3f})" if key in gt else ""
        lines.append(f"{'met   ' if ok else 'MISSED'} {name} {op.replace('>=', '≥').replace('<=', '≤')} "
                     f"{TARGETS[key]:g}: {m[key]:.3f}{reference}")
    return lines


def model_label(arg: str) -> tuple:
    """--ldm PATH or LABEL=PATH -> (label, path); split at the last "=" so that a label may hold one ("w=2"), and
    an existing file is a path even when its name holds one."""
    if "=" not in arg or Path(arg).exists():
        return "NaturalSpeech 2 (toy)", Path(arg)
    label, path = arg.rsplit("=", 1)
    return label, Path(path)


def load_items(root: Path, per_voice: int, asr_path: Path, split: str = "test") -> tuple:
    """The evaluation set of `pick_items` with everything the metrics compare against (`item_of`) -> (items,
    enrolled prompt embeddings per voice, the phoneme recogniser or None when it does not know the corpus's
    phonemes)."""
    from evaluation import asr
    from corpus import data
    items, symbols = [], data.read_manifest(root)["phonemes"]
    rec = asr.Recognizer(asr_path)
    if not set(symbols) <= set(rec.symbols) | set(asr.IGNORED):
        print(f"PER not measured: {asr_path} recognises other phonemes than {root}'s")
        rec = None
    for speaker, p, targets in pick_items(root, per_voice, split):
        pf = features.load_features(root / "feats" / f"{p['id']}.npz")
        prompt = prompt_of(features.load_audio(features.audio_path(root, p)), features.audio_path(root, p), pf["durations"])
        items += [item_of(root, symbols, speaker, u, prompt) for u in targets]
    return items, {it["speaker"]: it["prompt_emb"] for it in items}, rec


def prompt_of(wav: np.ndarray, path: Path, durations) -> dict:
    """A prompt as `item_of` takes it: its audio, file, speaker embedding, mean F0 (Hz, voiced frames) and phoneme
    durations (frames)."""
    from evaluation import metrics as ev
    f0, voiced = ev.f0_hz(wav)
    return dict(wav=wav, path=path, emb=ev.speaker_embedding(wav), f0_mean=float(f0[voiced].mean()),
                durations=durations)


def item_of(root: Path, symbols: list, speaker: str, u: dict, prompt: dict) -> dict:
    """One evaluation item: the cached utterance `u` of `speaker` as ground truth (audio, speaker embedding,
    features, phonemes), its text, and its prompt (`prompt_of`)."""
    from evaluation import metrics as ev
    f = features.load_features(root / "feats" / f"{u['id']}.npz")
    gt = features.load_audio(features.audio_path(root, u))
    return dict(speaker=speaker, text=u["text"], id=u["id"], prompt=prompt["wav"], prompt_path=prompt["path"],
                prompt_emb=prompt["emb"], prompt_f0_mean=prompt["f0_mean"], prompt_durations=prompt["durations"],
                gt=gt, gt_emb=ev.speaker_embedding(gt), gt_durations=f["durations"], gt_feats=f,
                phonemes=[symbols[i] for i in f["phonemes"]])


def resynthesis(codec, items: list) -> list:
    """Each item's ground truth through the codec (encode, decode), cut to its length."""
    return [resynthesise(codec, it["gt"]) for it in items]


def run_tts(args, out: Path) -> dict:
    """The tts stage: ground truth, its codec resynthesis and every --ldm model (`model_systems`) on the evaluation
    items, the first model's wavs and plots written to `out`, every system scored."""
    from tqdm import tqdm
    import codec as codec_lib
    t0 = time.time()
    synths = [(label, sample.Synthesizer(path, args.codec)) for label, path in map(model_label, args.ldm)]
    items, enrolled, rec = load_items(args.data, args.per_voice, args.asr, args.split)
    codec = codec_lib.load_codec(args.codec) if args.codec else synths[0][1].codec
    systems = [dict(name="ground truth", wavs=[it["gt"] for it in items]),
               dict(name="codec resynthesis", wavs=resynthesis(codec, items))]
    settings = dict(steps=args.steps, sampler=args.sampler, guidance=args.guidance, temperature=args.temperature,
                    pitch_shift=args.pitch_shift)
    systems += model_systems(args, synths, items, Sampling(**settings))
    t_synth = time.time() - t0
    write_examples(out, items, systems[2]["wavs"])
    results, rows = {}, {}
    for s in tqdm(systems, desc="score", unit="system"):
        s["embs"] = [it["gt_emb"] for it in items] if s["name"] == "ground truth" else [embed_or_none(w) for w in s["wavs"]]
        results[s["name"]], rows[s["name"]] = score(s, items, enrolled, rec, args.wer)
    voices = per_voice_table(items, rows["ground truth"], rows[systems[2]["name"]], training_f0_range(args.data))
    return dict(results=results, split=args.split, items=len(items), voices=len(enrolled), **settings, seed=args.seed,
                seconds=time.time() - t0, synthesis_seconds=t_synth, per_voice=voices,
                targets=check_targets(results, systems[2]["name"]),
                per_item={name: [dict(r, id=it["id"], speaker=it["speaker"]) for r, it in zip(rs, items)]
                          for name, rs in rows.items()})


def model_systems(args, synths: list, items: list, sampling: Sampling) -> list:
    """Each model's speech for the items (batched: the same audio as one at a time, faster); with --oracle, the
    first model's with the ground truth's durations, then durations + pitch (the prior's share of the error)."""
    def many(synth, jobs, label):
        return synth.many(jobs, sampling, args.batch_size, return_info=True, progress=f"synthesise ({label})")
    systems = []
    for label, synth in synths:
        got = many(synth, [sample.Job(it["text"], it["prompt_path"], args.seed + k) for k, it in enumerate(items)],
                   label)
        systems.append(system_of(label, got))
    label, synth = synths[0]
    for oracle in (("durations", "durations + pitch") if args.oracle else ()):
        jobs = [sample.Job(it["text"], it["prompt_path"], args.seed + k,
                           dict(phonemes=it["gt_feats"]["phonemes"], durations=it["gt_feats"]["durations"],
                                lf0=it["gt_feats"]["lf0"] if "pitch" in oracle else None))
                for k, it in enumerate(items)]
        got = many(synth, jobs, f"{label}, ground-truth {oracle}")
        systems.append(system_of(f"{label}, ground-truth {oracle}", got, prior_f0=False))
    return systems


def system_of(name: str, got: list, prior_f0: bool = True) -> dict:
    """A system to score (`score`) from `Synthesizer.many(..., return_info=True)`'s results: its wavs, the
    durations used and, with `prior_f0`, the F0 the pitch predictor asked for."""
    system = dict(name=name, wavs=[w for w, _ in got], durations=[i["durations"] for _, i in got])
    if prior_f0:
        system["prior_f0"] = [i["f0_hz"] for _, i in got]
    return system


def write_examples(out: Path, items: list, generated: list) -> None:
    """Prompt, ground truth and generated wav, and their plot (`plot_item`), of every item."""
    import soundfile as sf
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    for it, wav in zip(items, generated):
        tag = it["id"]                         # unique (LibriTTS IDs of one speaker may share their last part)
        sf.write(out / "wavs" / f"{tag}_prompt.wav", it["prompt"], SR)
        sf.write(out / "wavs" / f"{tag}_gt.wav", it["gt"], SR)
        sf.write(out / "wavs" / f"{tag}_generated.wav", wav, SR)
        plot_item(out / "plots" / f"{tag}.png", it["prompt"], it["gt"], wav,
                  f"{it['speaker']} (held out): {it['text']}")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m evaluation.demo",
                                 description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=["all", *STAGES], default="all")
    ap.add_argument("--data", type=Path, default=Path("data/toy"))
    ap.add_argument("--out", type=Path, default=Path("out"), help="results go to OUT/codec and OUT/tts")
    ap.add_argument("--codec", type=Path, default=None,
                    help="codec of the codec stage and the resynthesis row (default: checkpoints/toy/codec.pt); "
                         "when given, every --ldm model decodes with it too, else each with the codec it records")
    ap.add_argument("--ldm", action="append", default=None,
                    help="diffusion checkpoint, or LABEL=PATH; repeat for ablation rows (default checkpoints/toy/ldm.pt)")
    ap.add_argument("--asr", type=Path, default=Path("checkpoints/toy/asr.pt"), help="toy phoneme recogniser")
    ap.add_argument("--per-voice", type=int, default=1, help="sentences per held-out voice (README Results: 7)")
    ap.add_argument("--split", choices=["test", "confirm"], default="test", help="tts: the held-out voices (test); "
                    "confirm: the second held-out set, kept for a final check (docs/quality.md)")
    ap.add_argument("--steps", type=int, default=None, help=f"sampler steps (default {diffusion.DEFAULT_SAMPLING[1]} "
                    "with the default sampler, 150 with another; the paper: --sampler ode --steps 150)")
    ap.add_argument("--sampler", choices=sorted(diffusion.SAMPLERS), default=None,
                    help=f"default {diffusion.DEFAULT_SAMPLING[0]} (DPM-Solver++(2M), docs/sampler-steps.md)")
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--temperature", type=float, default=None, help="τ of the start noise (default: the model's; toy preset 5, paper 1.44)")
    ap.add_argument("--pitch-shift", type=float, default=0.0, help="semitones added to the predicted pitch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=8, help="sentences synthesised together (same audio, faster)")
    ap.add_argument("--codec-clips", type=int, default=12, help="held-out clips for the codec stage")
    ap.add_argument("--oracle", action="store_true", help="add rows with the ground truth's durations, then also its "
                    "pitch, in place of the predicted ones (how much of the gap is the prior's)")
    ap.add_argument("--wer", action="store_true", help="also WER with pocketsphinx (slow; useless on eSpeak voices)")
    return ap


def parse_args(argv=None) -> argparse.Namespace:
    """The command line, checked; the sampler and steps filled in (`diffusion.sampling_setting`), and the sing
    stage's steps: twice --steps when given, else section5.SING_STEPS."""
    ap = build_parser()
    args = ap.parse_args(argv)
    args.ldm = args.ldm or ["checkpoints/toy/ldm.pt"]
    if args.steps is not None and args.steps < 1:
        ap.error("--steps must be at least 1")
    args.sing_steps = 2 * args.steps if args.steps else section5.SING_STEPS      # singing: twice speech's steps
    args.sampler, args.steps = diffusion.sampling_setting(args.sampler, args.steps)
    if min(args.per_voice, args.steps, args.batch_size, args.codec_clips) < 1:
        ap.error("--per-voice, --steps, --batch-size and --codec-clips must be at least 1")
    return args


def stage_corpus(args) -> int:
    from corpus import data
    return data.main(["prepare", "--corpus", "toy", "--out", str(args.data), "--splits", "valid,test"])


def stage_codec(args) -> int:
    """evaluation/metrics.py codec on --codec-clips held-out clips, with 1, R/4, R/2 and R quantizers."""
    import codec as codec_lib
    from evaluation import metrics as ev
    codec_path = args.codec or Path("checkpoints/toy/codec.pt")
    R = codec_lib.load_codec(codec_path).cfg.n_q
    n_q = ",".join(str(n) for n in sorted({1, max(1, R // 4), max(1, R // 2), R}))
    return ev.main(["codec", "--ckpt", str(codec_path), "--data", str(args.data), "--max-utts", str(args.codec_clips),
                    "--n-q", n_q, "--out", str(args.out / "codec")])


def stage_tts(args) -> int:
    out = args.out / "tts"
    res = run_tts(args, out)
    (out / "results.json").write_text(json.dumps(res, indent=1))
    table = format_table(res["results"])
    (out / "results.md").write_text(table + "\n\n" + "\n".join(res["targets"]) + "\n\n" + res["per_voice"] + "\n")
    print(f"\nzero-shot TTS on {res['voices']} held-out voices, {res['items']} sentences, {res['steps']} "
          f"{res['sampler']} steps ({res['seconds']:.0f} s):\n{table}\n" + "\n".join(res["targets"]))
    print(f"\nper held-out voice ({list(res['results'])[2]}):\n{res['per_voice']}")
    print(f"wavs, plots, results.json, results.md in {out}")
    return 0


def stage_sing(args) -> int:
    """The first line of examples/twinkle.txt in the first held-out voice, transposed to its key."""
    from evaluation import demo_section5 as demo5
    out = args.out / "sing"
    synth = sample.Synthesizer(model_label(args.ldm[0])[1], args.codec)
    singing = demo5.Singing(line_only=True, modes=("auto",), plot_to=out / "line.png")
    res = demo5.run_sing(synth, args.data, out, singing, voices=1, steps=args.sing_steps)
    (out / "results.md").write_text(res["table"] + "\n")
    print(f"\na sung line (§5, {res['steps']} steps; wavs and line.png in {out}):\n{res['table']}")
    return 0


def stage_real(args) -> int:
    from evaluation import demo_real
    table = demo_real.run_stage(args.out / "real")
    print(f"\nthe real-voice model (checkpoints/real/) in two native voices it never heard:\n{table}")
    return 0


STAGES = {"corpus": stage_corpus, "codec": stage_codec, "tts": stage_tts, "sing": stage_sing, "real": stage_real}


def main(argv=None) -> int:
    args = parse_args(argv)
    t0, timings = time.time(), []
    try:
        for name, stage in STAGES.items():
            if args.stage in ("all", name):
                start = time.time()
                if stage(args) != 0:
                    return 2
                timings.append((name, time.time() - start))
    except sample.UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("time per stage: " + ", ".join(f"{name} {t:.0f} s" for name, t in timings)
          + f"; total {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
