"""The paper's zero-shot test (§4.1, §4.4) on the held-out speakers of a prepared cache, as one command.

The protocol: every held-out speaker (the cache's test split: a corpus's `test-*` subsets, or speakers named with
`prepare --test-speakers`) reads its test utterances of --min-s to --max-s seconds (4-10 s, as the paper's subset
of LibriSpeech test-clean); each is spoken from a prompt that is a --prompt-s second (3 s) cut of ANOTHER utterance
of the same speaker: the next one of at least --prompt-s seconds in id order (wrapping round), cut from the end of
its leading silence (the aligner's first pause; `prompt_cut`). A speaker without such a pair is left out, with a
note. Rows: ground truth, its codec resynthesis (the codec of --codec, else of the first --ldm), one per --ldm.

Columns (means over the test utterances):
    WER            word error rate of pocketsphinx (evaluation/asr.py; offline, US-English) against the transcript;
                   the ground-truth row is the recogniser's own floor on this speech
    SIM prompt/GT  cosine of speaker embeddings (Resemblyzer) to the prompt cut and to the ground truth
    spk-ID         closed-set speaker identification among the evaluated held-out speakers, each enrolled by the
                   mean embedding of its prompt cuts
    voiced frames  share of 12.5 ms frames in which PyWorld finds F0 (whispery or noisy speech: low)
    F0 corr GT     Pearson correlation of the F0 contours of output and ground truth, aligned by DTW (Table 12)
    ΔF0 mean       |mean F0 of the output − mean F0 of the prompt| over voiced frames, in Hz and relative (Table 4)
    DNSMOS         Microsoft's non-intrusive MOS predictors from the DNS Challenge (PyPI `speechmos`, ONNX models
                   in its wheel): P.835 overall quality OVRL and the P.808 MOS, 1 (bad) .. 5 (excellent)
    length / GT    output duration over the ground truth's

    python -m evaluation.zeroshot --data data/real_both --speakers mini-librispeech \\
        --ldm "real-speech model=checkpoints/real/ldm.pt" --ldm "eSpeak toy model=checkpoints/toy/ldm.pt" \\
        --out runs/zeroshot_native          # the 4 native held-out speakers (prepare --test-speakers mini-librispeech)

Writes to --out: results.md, results.json (means, one row per utterance with the words heard, the settings),
prompts/ (the prompt cuts), wavs/<system>/<id>.wav, plots/ (the first model's outputs against the ground truth).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

import diffusion
import sample
from corpus import features, inputs, layouts
from corpus.features import HOP, PAUSE, SAMPLE_RATE as SR
from evaluation import demo
from model import Sampling

COLUMNS = [("wer", "WER ↓", ".3f"), ("sim_prompt", "SIM prompt ↑", ".3f"), ("sim_gt", "SIM GT ↑", ".3f"),
           ("speaker_id", "spk-ID ↑", ".2f"), ("voiced_frac", "voiced frames", ".0%"),
           ("pitch_corr", "F0 corr GT ↑", ".2f"), ("pitch_mean_diff", "ΔF0 mean Hz ↓", ".1f"),
           ("pitch_mean_rel", "ΔF0 mean % ↓", ".1%"), ("dnsmos_ovrl", "DNSMOS OVRL ↑", ".2f"),
           ("dnsmos_p808", "DNSMOS P.808 ↑", ".2f"), ("length_ratio", "length / GT", ".2f")]


# ---------------------------------------------------------------------------------------------------------------
# The protocol: which utterance is spoken from which prompt
# ---------------------------------------------------------------------------------------------------------------
def seconds(u: dict) -> float:
    return u["n_frames"] * HOP / SR


def select(utts: list[dict], min_s: float = 4.0, max_s: float = 10.0, prompt_s: float = 3.0, per_speaker: int = 0,
           speakers: list[str] | None = None) -> list[tuple]:
    """[(speaker, target utterance, prompt utterance)] of the test split's speakers (those `speakers` names, by
    `layouts.match_speakers` or by their root's tag, when given): targets of `min_s`..`max_s` seconds (the first `per_speaker` by id, 0:
    all), each with the next other utterance of at least `prompt_s` seconds of the same speaker in id order
    (wrapping round). ValueError without a test split or without any such pair; speakers without one are noted."""
    by_spk = {}
    for u in sorted((u for u in utts if u["split"] == "test"), key=lambda u: u["id"]):
        by_spk.setdefault(u["speaker"], []).append(u)
    if not by_spk:
        raise ValueError("the cache has no test split (held-out speakers): prepare it with a test-* subset or "
                         "with --test-speakers")
    if speakers:                                      # a root's tag (`LibriTTS`) names all its speakers
        tags = {s.partition(".")[0] for s in by_spk if "." in s}
        names = [x for n in speakers for x in ([s for s in by_spk if s.startswith(f"{n}.")] if n in tags else [n])]
        by_spk = {s: by_spk[s] for s in layouts.match_speakers(by_spk, names, "--speakers")}
    chosen, left_out = [], []
    for spk, us in by_spk.items():
        pairs = []
        for k, u in enumerate(us):
            others = [us[(k + j) % len(us)] for j in range(1, len(us))]
            prompt = next((p for p in others if seconds(p) >= prompt_s), None)
            if min_s <= seconds(u) <= max_s and prompt is not None:
                pairs.append((spk, u, prompt))
        chosen += pairs[:per_speaker or None]
        if not pairs:
            left_out.append(spk)
    if not chosen:
        raise ValueError(f"no held-out speaker has an utterance of {min_s:g}-{max_s:g} s and another of at least "
                         f"{prompt_s:g} s for its prompt (--min-s, --max-s, --prompt-s)")
    if left_out:
        inputs.note(f"{len(left_out)} held-out speaker(s) left out, without an utterance of {min_s:g}-{max_s:g} s "
                    f"and another of at least {prompt_s:g} s: {', '.join(left_out)}")
    return chosen


def prompt_cut(wav: np.ndarray, phonemes: list, durations, prompt_s: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """(`prompt_s` seconds of `wav` from the end of its leading pause (moved back where fewer remain), the
    durations of the phonemes inside the cut, in frames, clipped to it). phonemes/durations: the cached
    alignment of `wav` (12.5 ms frames)."""
    n, total = int(round(prompt_s * SR / HOP)), len(wav) // HOP
    lead = int(durations[0]) if phonemes and phonemes[0] == PAUSE else 0
    start = max(0, min(lead, total - n))
    bounds = np.concatenate([[0], np.cumsum(np.asarray(durations, np.int64))])
    inside = np.minimum(bounds[1:], start + n) - np.maximum(bounds[:-1], start)
    return wav[start * HOP:(start + n) * HOP], inside[inside > 0]


# ---------------------------------------------------------------------------------------------------------------
# Naturalness: DNSMOS
# ---------------------------------------------------------------------------------------------------------------
def dnsmos(wav) -> dict:
    """DNSMOS of one clip (16 kHz): {dnsmos_ovrl, dnsmos_sig, dnsmos_bak} (P.835: overall, speech signal,
    background) and dnsmos_p808 (P.808 MOS), each about 1 (bad) .. 5 (excellent). speechmos' `dnsmos.run`
    takes a float array in [-1, 1] (clipped here) at 16 kHz; it scores 9.01 s windows, 1 s apart, and repeats
    a shorter clip until it fills one."""
    from speechmos import dnsmos as model
    wav = np.clip(np.asarray(wav, np.float32), -1.0, 1.0)
    if wav.ndim != 1 or len(wav) < SR // 4:
        raise ValueError(f"DNSMOS needs a mono clip of at least 0.25 s, got shape {wav.shape}")
    got = model.run(wav, SR)
    return {f"dnsmos_{k}": float(got[f"{k}_mos"]) for k in ("ovrl", "sig", "bak", "p808")}


# ---------------------------------------------------------------------------------------------------------------
# The evaluation
# ---------------------------------------------------------------------------------------------------------------
def load_items(root: Path, chosen: list, prompt_s: float, out: Path) -> tuple[list, dict]:
    """(`demo.item_of` items of the chosen (speaker, target, prompt utterance) triples, each prompt the
    `prompt_cut` of its utterance written to out/prompts/; {speaker: unit mean embedding of its prompt cuts})."""
    import soundfile as sf
    from tqdm import tqdm
    from corpus import data
    symbols = data.read_manifest(root)["phonemes"]
    prompts, items = {}, []
    for speaker, u, p in tqdm(chosen, desc="prompts and ground truth", unit="utterance"):
        if p["id"] not in prompts:
            f = features.load_features(root / "feats" / f"{p['id']}.npz")
            wav, durations = prompt_cut(features.load_audio(features.audio_path(root, p)), [symbols[i] for i in f["phonemes"]],
                                        f["durations"], prompt_s)
            path = out / "prompts" / f"{p['id']}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, wav, SR)
            prompts[p["id"]] = dict(demo.prompt_of(wav, path, durations), speaker=speaker)
        items.append(dict(demo.item_of(root, symbols, speaker, u, prompts[p["id"]]), prompt_id=p["id"]))
    enrolled = {}
    for p in prompts.values():
        enrolled.setdefault(p["speaker"], []).append(p["emb"])
    return items, {s: np.mean(e, 0) / np.linalg.norm(np.mean(e, 0)) for s, e in enrolled.items()}


def score_all(systems: list, items: list, enrolled: dict) -> tuple[dict, dict]:
    """({system: means}, {system: rows}): `demo.score` with WER, and DNSMOS, of every system."""
    from tqdm import tqdm
    results, rows = {}, {}
    for s in systems:
        gt = s["name"] == "ground truth"
        s["embs"] = [it["gt_emb"] for it in items] if gt else [demo.embed_or_none(w) for w in s["wavs"]]
        means, rs = demo.score(s, items, enrolled, None, wer=True, progress=True)
        for r, wav in zip(rs, tqdm(s["wavs"], desc=f"DNSMOS {s['name']}", unit="item")):
            r.update(dnsmos(wav))
        means.update({k: float(np.mean([r[k] for r in rs])) for k in rs[0] if k.startswith("dnsmos_")})
        results[s["name"]], rows[s["name"]] = means, rs
    return results, rows


def run(args) -> dict:
    """The protocol's items (`select`, `load_items`), every system's speech (`demo.model_systems`), scored
    (`score_all`); wavs and plots written to args.out."""
    import codec as codec_lib
    from corpus import data
    t0 = time.time()
    chosen = select(data.read_manifest(args.data)["utterances"], args.min_s, args.max_s, args.prompt_s,
                    args.per_speaker, args.speakers)
    synths = [(label, sample.Synthesizer(path, args.codec)) for label, path in map(demo.model_label, args.ldm)]
    items, enrolled = load_items(args.data, chosen, args.prompt_s, args.out)
    codec = codec_lib.load_codec(args.codec) if args.codec else synths[0][1].codec
    systems = [dict(name="ground truth", wavs=[it["gt"] for it in items]),
               dict(name="codec resynthesis", wavs=demo.resynthesis(codec, items))]
    settings = dict(steps=args.steps, sampler=args.sampler, temperature=args.temperature, guidance=1.0,
                    pitch_shift=0.0)
    systems += demo.model_systems(args, synths, items, Sampling(**settings))
    write_wavs(args.out, items, systems)
    results, rows = score_all(systems, items, enrolled)
    return dict(results=results, items=len(items), speakers=sorted(enrolled), seconds=time.time() - t0,
                protocol=dict(min_s=args.min_s, max_s=args.max_s, prompt_s=args.prompt_s), seed=args.seed,
                **settings, per_voice=per_voice(args.data, items, rows, systems[2]["name"]),
                per_item={name: [dict(r, id=it["id"], speaker=it["speaker"], prompt=it["prompt_id"], text=it["text"])
                                 for r, it in zip(rs, items)] for name, rs in rows.items()})


def per_voice(root: Path, items: list, rows: dict, model: str) -> str:
    """`demo.per_voice_table` of the first model, or a line saying why not (no valid split to measure the
    training voices' F0 range on)."""
    try:
        train_f0 = demo.training_f0_range(root)
    except ValueError:
        return "(no per-voice table: the cache has no valid split to measure the training voices' F0 on)"
    return demo.per_voice_table(items, rows["ground truth"], rows[model], train_f0)


def write_wavs(out: Path, items: list, systems: list) -> None:
    """Every system's speech as wavs/<system>/<id>.wav, and the first model's plot per item (`demo.plot_item`)."""
    import soundfile as sf
    for s in systems:
        folder = out / "wavs" / re.sub(r"[^\w.-]+", "_", s["name"]).strip("_")
        folder.mkdir(parents=True, exist_ok=True)
        for it, wav in zip(items, s["wavs"]):
            sf.write(folder / f"{it['id']}.wav", wav, SR)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    for it, wav in zip(items, systems[2]["wavs"]):
        demo.plot_item(out / "plots" / f"{it['id']}.png", it["prompt"], it["gt"], wav,
                       f"{it['speaker']} (held out; prompt {it['prompt_id']}): {it['text'][:80]}")


def report(res: dict) -> str:
    """results.md: the protocol, the table and the first model's per-voice table."""
    p = res["protocol"]
    return (f"Zero-shot TTS on {len(res['speakers'])} held-out speakers ({', '.join(res['speakers'])}), "
            f"{res['items']} utterances of {p['min_s']:g}-{p['max_s']:g} s, each from a {p['prompt_s']:g} s cut of "
            f"another utterance of its speaker; {res['steps']} {res['sampler']} steps, seed {res['seed']} "
            f"({res['seconds']:.0f} s).\n\n{demo.format_table(res['results'], COLUMNS)}\n\n"
            f"Per held-out voice ({list(res['results'])[2]}):\n\n{res['per_voice']}\n")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m evaluation.zeroshot", description=__doc__.split("\n")[0],
                                 epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a prepared cache with a test split")
    ap.add_argument("--ldm", action="append", required=True, help="diffusion checkpoint, or LABEL=PATH; repeat it")
    ap.add_argument("--codec", type=Path, default=None, help="the codec every model decodes with and the "
                    "resynthesis row uses (default: each model's own; the resynthesis: the first model's)")
    ap.add_argument("--out", type=Path, default=Path("out/zeroshot"))
    ap.add_argument("--speakers", type=layouts.test_speaker_names, default=None, help="comma-separated held-out "
                    "speakers to evaluate, as prepare --test-speakers names them, or a root's name (LibriTTS: all "
                    "its held-out speakers); default: all of the test split")
    ap.add_argument("--min-s", type=float, default=4.0, help="shortest test utterance, seconds")
    ap.add_argument("--max-s", type=float, default=10.0, help="longest test utterance, seconds")
    ap.add_argument("--prompt-s", type=float, default=3.0, help="length of the prompt cut, seconds")
    ap.add_argument("--per-speaker", type=int, default=0, help="at most this many test utterances per speaker "
                    "(0: all)")
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: diffusion.DEFAULT_SAMPLING's)")
    ap.add_argument("--sampler", choices=sorted(diffusion.SAMPLERS), default=None)
    ap.add_argument("--temperature", type=float, default=None, help="τ of the start noise (default: the model's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=8, help="sentences synthesised together (same audio)")
    ap.set_defaults(oracle=False)
    return ap


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if not (0 < args.prompt_s and 0 < args.min_s <= args.max_s):
        ap.error("need 0 < --prompt-s and 0 < --min-s <= --max-s")
    if min(args.batch_size, args.steps or 1) < 1 or args.per_speaker < 0:
        ap.error("--steps and --batch-size must be at least 1, --per-speaker at least 0")
    try:
        args.sampler, args.steps = diffusion.sampling_setting(args.sampler, args.steps)
        res = run(args)
    except (sample.UserError, ValueError, FileNotFoundError) as e:     # a UserError carries its exit code
        print(f"error: {e}", file=sys.stderr)
        return getattr(e, "code", 2)
    (args.out / "results.json").write_text(json.dumps(res, indent=1))
    (args.out / "results.md").write_text(report(res))
    print("\n" + report(res) + f"\nresults.md, results.json, prompts/, wavs/, plots/ in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
