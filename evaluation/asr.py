"""A small CTC phoneme recogniser: the intelligibility judge for the toy corpus (phoneme error rate, PER).

Why it exists: the paper measures intelligibility as WER with a HuBERT-CTC recogniser (§4.4). Real-speech recognisers
(pocketsphinx here) cannot read eSpeak's formant voices, so on the toy corpus we train our own judge: a recogniser
trained only on the ground-truth audio of the toy *training* voices, then used on held-out voices. Its error on
held-out ground truth is the floor that generated speech is compared against (evaluation/demo.py's target: PER of generated
speech ≤ 2 × that floor). For real speech, `transcribe` + `word_error_rate` give the paper's WER with pocketsphinx
(its bundled en-US model, offline).

    features   log-mel (80 bands, 12.5 ms hop), normalised per utterance (mean/std per band)
    model      2 × [conv1d k=5 → GELU] → 2-layer bidirectional GRU → linear → log-softmax over phonemes + blank
    loss       CTC (Graves et al. 2006); blank = ID 0 (the padding ID of the phoneme set, never a real phoneme)
    decoding   greedy: argmax per frame, merge repeats, drop blanks
    metric     PER = Levenshtein(ref, hyp) / |ref| over phonemes, pauses excluded

    python -m evaluation.asr train --data data/toy --out checkpoints/toy/asr.pt      # a few minutes on a 2-core CPU
    python -m evaluation.asr eval  --ckpt checkpoints/toy/asr.pt --data data/toy     # PER on held-out ground truth
"""
import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import codec as codec_lib
from corpus import features

IGNORED = {"<pad>", "_"}                  # padding/blank and the pause symbol are not scored


@dataclass
class ASRConfig:
    n_mels: int = 80
    channels: int = 192                 # conv front end
    hidden: int = 128                   # GRU units per direction
    layers: int = 2
    n_symbols: int = 84                 # phoneme set size (ID 0 = blank)
    steps: int = 1500
    batch_size: int = 16
    lr: float = 2e-3
    seed: int = 0


def mel_features(wav: torch.Tensor) -> torch.Tensor:
    """wav (B, L) at 16 kHz -> log-mel (B, 80, L/200), each band normalised over time per utterance."""
    lm = codec_lib.log_mel(wav, 1024, 200, 80)
    return (lm - lm.mean(-1, keepdim=True)) / (lm.std(-1, keepdim=True) + 1e-5)


class PhonemeCTC(nn.Module):
    def __init__(self, cfg: ASRConfig):
        super().__init__()
        self.cfg = cfg
        self.conv = nn.Sequential(nn.Conv1d(cfg.n_mels, cfg.channels, 5, padding=2), nn.GELU(),
                                  nn.Conv1d(cfg.channels, cfg.channels, 5, padding=2), nn.GELU())
        self.rnn = nn.GRU(cfg.channels, cfg.hidden, cfg.layers, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * cfg.hidden, cfg.n_symbols)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """features (B, 80, T) -> log-probabilities (B, T, n_symbols)."""
        h = self.conv(feats).transpose(1, 2)                            # (B, T, C)
        return F.log_softmax(self.out(self.rnn(h)[0]), -1)


def greedy_decode(logp: torch.Tensor) -> list:
    """(T, V) log-probabilities -> IDs: best symbol per frame, repeats merged, blanks (0) dropped."""
    best = logp.argmax(-1).tolist()
    return [s for k, s in enumerate(best) if s != 0 and (k == 0 or s != best[k - 1])]


def edit_distance(ref: list, hyp: list) -> int:
    """Levenshtein distance: the fewest substitutions, deletions and insertions turning ref into hyp."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


def phoneme_error_rate(refs: list, hyps: list) -> float:
    """PER = Σ edit_distance(ref, hyp) / Σ |ref| over a set of utterances (symbols in IGNORED removed)."""
    refs = [[p for p in r if p not in IGNORED] for r in refs]
    hyps = [[p for p in h if p not in IGNORED] for h in hyps]
    total = sum(len(r) for r in refs)
    if total == 0:
        raise ValueError("no reference phonemes to score")
    return sum(edit_distance(r, h) for r, h in zip(refs, hyps)) / total


class Recognizer:
    """Loads a trained recogniser: `rec(wav np.float32 16 kHz) -> list of phoneme symbols`."""

    def __init__(self, path, device: str = "cpu"):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"phoneme recogniser {path} not found: train it with `python -m evaluation.asr train`")
        ck = torch.load(path, map_location=device, weights_only=True)
        if ck.get("kind") != "asr":
            raise ValueError(f"{path} is not a phoneme recogniser checkpoint (evaluation/asr.py train)")
        self.symbols = ck["phonemes"]
        self.model = PhonemeCTC(ASRConfig(**ck["config"])).to(device).eval()
        self.model.load_state_dict({k: v.float() for k, v in ck["model"].items()})
        self.device = device

    @torch.no_grad()
    def __call__(self, wav) -> list:
        logp = self.model(mel_features(torch.as_tensor(np.asarray(wav, np.float32), device=self.device)[None]))[0]
        return [self.symbols[i] for i in greedy_decode(logp)]


# ---------------------------------------------------------------------------------------------------------------
# WER with pocketsphinx: the real-speech recogniser (useless on eSpeak voices, see above)
# ---------------------------------------------------------------------------------------------------------------
def normalize_text(text: str) -> str:
    """For WER: numbers spelled out (g2p_en's normaliser), lower case, punctuation removed."""
    import re
    from corpus import text as front_end
    front_end.ensure_nltk_data()                  # g2p_en downloads NLTK data at import unless it is there already
    from g2p_en.expand import normalize_numbers
    text = normalize_numbers(text).lower().replace("-", " ")
    return " ".join(re.sub(r"[^a-z' ]", " ", text).split())


_SPHINX = []


def transcribe(wav) -> str:
    """Words heard by pocketsphinx (its bundled en-US acoustic model and language model; offline)."""
    from pocketsphinx import Decoder
    if not _SPHINX:
        _SPHINX.append(Decoder(samprate=16000, loglevel="FATAL"))
    pcm = (np.clip(np.asarray(wav, np.float32), -1, 1) * 32767).astype(np.int16)
    d = _SPHINX[0]
    d.start_utt()
    d.process_raw(pcm.tobytes(), full_utt=True)
    d.end_utt()
    return d.hyp().hypstr if d.hyp() is not None else ""


def word_error_rate(ref_texts: list, hyp_texts: list) -> float:
    """WER = (S + D + I) / N over the whole set (jiwer), after normalize_text on both sides."""
    import jiwer
    return float(jiwer.wer([normalize_text(t) for t in ref_texts], [normalize_text(t) or "<empty>" for t in hyp_texts]))


def load_split(root: Path, split: str, max_utts: int | None = None) -> list:
    """[(wav, phoneme IDs)] of a split's ground truth, in manifest order (the first max_utts if given)."""
    from corpus import data
    utts = [u for u in data.read_manifest(root)["utterances"] if u["split"] == split][:max_utts]
    return [(features.load_audio(features.audio_path(root, u)), features.load_features(root / "feats" / f"{u['id']}.npz")["phonemes"])
            for u in utts]


def ctc_loss(model: PhonemeCTC, batch: list, symbols: list, device: str = "cpu") -> torch.Tensor:
    """CTC loss (mean over the batch of the loss per target phoneme) of [(wav, phoneme IDs)], pauses removed from the
    targets; features are computed per utterance, then zero-padded to the longest."""
    feats = [mel_features(torch.from_numpy(w)[None])[0] for w, _ in batch]         # per utterance: no padding
    in_lens = torch.tensor([f.shape[-1] for f in feats])                          # leaks into the statistics
    x = torch.zeros(len(batch), model.cfg.n_mels, int(in_lens.max()))
    for k, f in enumerate(feats):
        x[k, :, :f.shape[-1]] = f
    targets = [torch.as_tensor([p for p in ph if symbols[p] not in IGNORED]) for _, ph in batch]
    logp = model(x.to(device))                                                     # (B, T, V)
    return F.ctc_loss(logp.transpose(0, 1), torch.cat(targets), in_lens,
                      torch.tensor([len(t) for t in targets]), blank=0, zero_infinity=True)


def train(root: Path, out: Path, cfg: ASRConfig, device: str = "cpu") -> dict:
    """CTC training on the train split's ground truth; writes out atomically; returns PER on valid and test."""
    from tqdm import tqdm
    from corpus import data
    symbols = data.read_manifest(root)["phonemes"]
    cfg.n_symbols = len(symbols)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    items = load_split(root, "train")
    model = PhonemeCTC(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    # the one-cycle schedule spans at least 20 steps: with fewer, its 10% warm-up rounds to a single step and
    # OneCycleLR divides by zero (a shorter run stops part-way through the schedule)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=max(cfg.steps, 20), pct_start=0.1)
    bar = tqdm(range(cfg.steps), desc="asr", unit="step", mininterval=5)
    for step in bar:
        batch = [items[i] for i in rng.choice(len(items), cfg.batch_size, replace=False)]
        loss = ctc_loss(model, batch, symbols, device)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        bar.set_postfix(ctc=f"{loss.item():.3f}", refresh=False)
    ck = dict(kind="asr", config=asdict(cfg), phonemes=symbols,                      # weights stored in fp16
              model={k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()},
              front_end=data.read_manifest(root)["front_end"])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save(ck, tmp)
    os.replace(tmp, out)
    rec = Recognizer(out, device)
    return {split: evaluate(rec, root, split) for split in ("valid", "test")}


def evaluate(rec: Recognizer, root: Path, split: str = "test", max_utts: int | None = None) -> float:
    """PER of the recogniser on a split's ground-truth audio (test = held-out voices)."""
    items = load_split(Path(root), split, max_utts)
    return phoneme_error_rate([[rec.symbols[i] for i in ph] for _, ph in items], [rec(w) for w, _ in items])


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m evaluation.asr",
                                 description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train on the train split's ground truth")
    t.add_argument("--data", type=Path, default=Path("data/toy"))
    t.add_argument("--out", type=Path, default=Path("checkpoints/toy/asr.pt"))
    t.add_argument("--steps", type=int, default=ASRConfig.steps)
    e = sub.add_parser("eval", help="phoneme error rate on a split's ground truth")
    e.add_argument("--ckpt", type=Path, default=Path("checkpoints/toy/asr.pt"))
    e.add_argument("--data", type=Path, default=Path("data/toy"))
    e.add_argument("--split", default="test", choices=["train", "valid", "test"])
    return ap


def train_command(args) -> str:
    if args.steps < 1:
        raise ValueError("--steps must be at least 1")
    t0 = time.time()
    per = train(args.data, args.out, ASRConfig(steps=args.steps))
    return f"wrote {args.out} in {time.time() - t0:.0f} s; PER on ground truth: " + json.dumps(per)


def eval_command(args) -> str:
    return f"PER ({args.split}, ground truth): {evaluate(Recognizer(args.ckpt), args.data, args.split):.4f}"


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from corpus import data
        data.read_manifest(args.data)                       # a missing cache is reported before anything else
        report = train_command(args) if args.cmd == "train" else eval_command(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
