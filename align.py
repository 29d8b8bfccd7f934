"""Built-in phoneme aligner (paper §4.1: phoneme durations "from an internal alignment tool"), learned from the
corpus itself, so that real speech needs no external forced aligner.

Method: unsupervised alignment learning of Badlani et al. 2022, "One TTS Alignment to Rule Them All" (RAD-TTS
aligner), on log-mel frames at the codec's frame rate (12.5 ms), so that its durations are codec frames.

    k_n = TextEncoder(phonemes)_n,  q_t = MelEncoder(mel)_t                     keys (B, D, N), queries (B, D, T)
    D_{t,n} = ‖q_t − k_n‖²                                                       distances (B, T, N)
    log A_soft = log_softmax_n(−τ D + log P_prior)                               soft alignment (τ = 1 by default)
    P_prior(n | t) = BetaBinomial(n; N − 1, α = ω t, β = ω (T − t + 1))          the beta-binomial prior
    L_ForwardSum = −log Σ_{monotonic paths} Π_t A_soft[t, path(t)]               the forward-sum (CTC) loss
    A_hard = MAS(log A_soft)                                                     monotonic alignment search
    L_bin = −Σ_{t,n} A_hard ⊙ log A_soft / Σ A_hard                              the binarization loss
    L_align = L_ForwardSum + λ_bin L_bin      (λ_bin = 0 for the first `bin_start` of the steps)

Durations d_n = Σ_t A_hard[t, n]: every phoneme gets ≥ 1 frame and they sum exactly to T, as the feature cache
needs. Monotonic alignment search is the Glow-TTS dynamic programme from PyPI `monotonic-alignment-search` (a
compiled, well-tested implementation; the recursion is written out in `hard_alignment`'s docstring).

On real speech (corpus/libritts.py) three additions, beyond Badlani et al.: an optional pause between every two words
(`aligner_tokens`, `drop_short_pauses`), keys whose stress variants share a base embedding (`share_stress`), and
synthetic eSpeak anchor utterances in the training set (`anchor_utts`; without them a small real corpus collapses).

Fitting, measuring and plotting it from the command line: `python -m evaluation.alignment fit|eval|plot`.
"""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from codec import log_mel
from corpus.features import HOP, PAUSE, SAMPLE_RATE, atomic_write
from corpus.text import OPTIONAL_PAUSE, split_stress

MASKED = -1e4        # log-probability of a padded phoneme: finite, because −inf makes the CTC gradient NaN


@dataclass
class AlignerConfig:
    dim: int = 128             # key/query dimension D
    hop: int = 200             # samples per aligner frame (200 = the codec's 12.5 ms; 100 aligns twice as finely)
    n_mels: int = 80
    n_fft: int = 1024
    text_layers: int = 3       # residual conv layers over the phoneme embeddings (context for the keys)
    text_kernel: int = 5
    mel_layers: int = 3
    mel_kernel: int = 3
    temperature: float = 1.0   # τ scaling the distances in the soft alignment
    share_stress: bool = False  # key embedding = base phoneme's + stress level's ('AH0', 'AH1' share 'AH')
    anchor_utts: int = 0       # synthetic eSpeak utterances mixed into a real corpus's training set (corpus/libritts.py)
    prior_omega: float = 1.0   # ω of the beta-binomial prior (RAD-TTS: 1)
    blank_logprob: float = -1.0  # log-probability of the CTC blank before renormalising (RAD-TTS: −1)
    lambda_bin: float = 1.0
    bin_start: float = 0.3     # L_bin joins after this share of the steps
    lr: float = 1e-3
    batch_size: int = 16
    steps: int = 3000
    seed: int = 0


# ---------------------------------------------------------------------------------------------------------------
# Features and the prior
# ---------------------------------------------------------------------------------------------------------------
def mel_frames(wav: np.ndarray | torch.Tensor, cfg: AlignerConfig) -> torch.Tensor:
    """Log-mel of one utterance at the aligner's frame rate, normalised per mel bin over the utterance (mean 0,
    std 1: robust to recording level and channel): (n_mels, T) with T = len(wav) // hop, frame t centred on the
    middle of samples t·hop .. (t+1)·hop."""
    wav = torch.as_tensor(np.asarray(wav, np.float32))
    hop = cfg.hop
    T = len(wav) // hop
    if T < 1:
        raise ValueError(f"audio of {len(wav)} samples is shorter than one frame ({hop} samples)")
    m = log_mel(wav[hop // 2: T * hop][None], cfg.n_fft, hop, cfg.n_mels)[0, :, :T]     # (n_mels, T)
    return (m - m.mean(1, keepdim=True)) / (m.std(1, keepdim=True) + 1e-5)


def beta_binomial_log_prior(N: int, T: int, omega: float = 1.0) -> torch.Tensor:
    """The beta-binomial alignment prior, log P(n | t) for t = 1..T, n = 0..N−1: (T, N).

        P(n | t) = C(N−1, n) · B(n + α_t, N − 1 − n + β_t) / B(α_t, β_t),  α_t = ω t,  β_t = ω (T − t + 1)

    Its mode moves along the diagonal n ≈ (N−1) t / T, which pulls the soft alignment towards monotonic paths
    early in training (Badlani et al. 2022, §3.3)."""
    n = torch.arange(N, dtype=torch.float64)[None]                                  # (1, N)
    t = torch.arange(1, T + 1, dtype=torch.float64)[:, None]                        # (T, 1)
    a, b = omega * t, omega * (T - t + 1)
    lbeta = lambda x, y: torch.lgamma(x) + torch.lgamma(y) - torch.lgamma(x + y)
    log_choose = torch.lgamma(torch.tensor(N, dtype=torch.float64)) - torch.lgamma(n + 1) - torch.lgamma(N - n)
    return (log_choose + lbeta(n + a, N - 1 - n + b) - lbeta(a, b)).float()


# ---------------------------------------------------------------------------------------------------------------
# The aligner
# ---------------------------------------------------------------------------------------------------------------
class Aligner(nn.Module):
    """Phoneme keys and mel queries; forward(...) -> log A_soft (B, T, N), ≈ MASKED on padded phonemes.
    `phonemes`: the inventory (names, needed by `share_stress`) or its size."""

    def __init__(self, phonemes: int | list[str], cfg: AlignerConfig):
        super().__init__()
        names = [str(i) for i in range(phonemes)] if isinstance(phonemes, int) else list(phonemes)
        self.cfg, self.n_phonemes = cfg, len(names)
        D = cfg.dim
        if cfg.share_stress:
            split = [split_stress(p) for p in names]
            bases, levels = sorted({b for _, b in split}), sorted({s for s, _ in split})
            self.register_buffer("base_of", torch.tensor([bases.index(b) for _, b in split]), persistent=False)
            self.register_buffer("stress_of", torch.tensor([levels.index(s) for s, _ in split]), persistent=False)
            self.embed = nn.Embedding(len(bases), D)
            self.stress_embed = nn.Embedding(len(levels), D)
        else:
            self.embed = nn.Embedding(len(names), D)
        self.text = nn.ModuleList(nn.Conv1d(D, D, cfg.text_kernel, padding=cfg.text_kernel // 2)
                                  for _ in range(cfg.text_layers))
        self.text_out = nn.Conv1d(D, D, 1)
        self.mel_in = nn.Conv1d(cfg.n_mels, D, cfg.mel_kernel, padding=cfg.mel_kernel // 2)
        self.mel = nn.ModuleList(nn.Conv1d(D, D, cfg.mel_kernel, padding=cfg.mel_kernel // 2)
                                 for _ in range(cfg.mel_layers - 1))
        self.mel_out = nn.Conv1d(D, D, 1)

    def keys(self, phonemes, phoneme_mask):                       # (B, N), (B, N) -> (B, D, N)
        keep = phoneme_mask[:, None]
        if self.cfg.share_stress:
            x = self.embed(self.base_of[phonemes]) + self.stress_embed(self.stress_of[phonemes])
        else:
            x = self.embed(phonemes)
        x = x.transpose(1, 2) * keep
        for conv in self.text:
            x = x + torch.relu(conv(x)) * keep
        return self.text_out(x) * keep

    def queries(self, mel, frame_mask):                           # (B, n_mels, T), (B, T) -> (B, D, T)
        keep = frame_mask[:, None]
        x = torch.relu(self.mel_in(mel * keep)) * keep
        for conv in self.mel:
            x = x + torch.relu(conv(x)) * keep
        return self.mel_out(x) * keep

    def forward(self, phonemes, phoneme_mask, mel, frame_mask) -> torch.Tensor:
        """log A_soft = log_softmax_n(−τ ‖q_t − k_n‖² + log P_prior(n | t)): (B, T, N); τ = cfg.temperature (1)."""
        k, q = self.keys(phonemes, phoneme_mask), self.queries(mel, frame_mask)
        dist = (q.pow(2).sum(1)[:, :, None] - 2 * q.transpose(1, 2) @ k + k.pow(2).sum(1)[:, None, :])  # (B, T, N)
        prior = torch.zeros_like(dist)
        for b, (N, T) in enumerate(zip(phoneme_mask.sum(1).tolist(), frame_mask.sum(1).tolist())):
            prior[b, :T, :N] = beta_binomial_log_prior(N, T, self.cfg.prior_omega)
        logits = (-self.cfg.temperature * dist + prior).masked_fill(~phoneme_mask[:, None, :], MASKED)
        return torch.log_softmax(logits, -1)


def forward_sum_loss(log_attn, phoneme_mask, frame_mask, blank_logprob: float = -1.0) -> torch.Tensor:
    """L_ForwardSum = −(1/B) Σ_b (1/N_b) log Σ_{monotonic paths} Π_t A_soft[t, path(t)].

    Computed as a CTC loss whose classes are [blank, phoneme 1..N] and whose target is the sequence 1..N: each
    phoneme in order, each at least once, blanks allowed between them (a blank column of log-probability
    `blank_logprob` is prepended and every frame renormalised)."""
    B, T, N = log_attn.shape
    blank = torch.full((B, T, 1), blank_logprob, dtype=log_attn.dtype, device=log_attn.device)
    lp = torch.log_softmax(torch.cat([blank, log_attn], -1), -1)                    # (B, T, N + 1)
    targets = torch.arange(1, N + 1, device=log_attn.device).expand(B, N)
    return F.ctc_loss(lp.transpose(0, 1), targets, frame_mask.sum(1), phoneme_mask.sum(1), blank=0,
                      reduction="mean", zero_infinity=True)


def hard_alignment(log_attn, phoneme_mask, frame_mask) -> torch.Tensor:
    """A_hard = MAS(log A_soft): the monotonic path (each frame one phoneme, phonemes in order, each ≥ 1 frame,
    starting at the first and ending at the last) of highest Σ_t log A_soft[t, path(t)]. The Glow-TTS recursion

        Q[t, n] = log A_soft[t, n] + max(Q[t−1, n], Q[t−1, n−1]),   backtracked from Q[T, N].

    (B, T, N) of 0/1. Needs T ≥ N for every item."""
    from monotonic_alignment_search import maximum_path
    mask = (phoneme_mask[:, :, None] & frame_mask[:, None, :])                      # (B, N, T)
    value = log_attn.detach().transpose(1, 2).masked_fill(~mask, -1e4).float().cpu().contiguous()
    return maximum_path(value, mask.cpu().contiguous(), implementation="cython").transpose(1, 2).to(log_attn.device,
                                                                                                  log_attn.dtype)


def bin_loss(log_attn, hard) -> torch.Tensor:
    """L_bin = −Σ_{t,n} A_hard[t, n] log A_soft[t, n] / Σ_{t,n} A_hard[t, n]."""
    return -(log_attn.masked_fill(hard == 0, 0) * hard).sum() / hard.sum().clamp_min(1)


def losses(net: Aligner, batch: dict, with_bin: bool) -> dict:
    """{"forward_sum", "bin" (when with_bin), "total"} of one batch (`collate`)."""
    log_attn = net(batch["phonemes"], batch["phoneme_mask"], batch["mel"], batch["frame_mask"])
    out = {"forward_sum": forward_sum_loss(log_attn, batch["phoneme_mask"], batch["frame_mask"],
                                           net.cfg.blank_logprob)}
    if with_bin:
        out["bin"] = bin_loss(log_attn, hard_alignment(log_attn, batch["phoneme_mask"], batch["frame_mask"]))
    out["total"] = out["forward_sum"] + net.cfg.lambda_bin * out.get("bin", 0.0)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Data, training, durations
# ---------------------------------------------------------------------------------------------------------------
def collate(items: list[tuple[np.ndarray, torch.Tensor]]) -> dict:
    """[(phoneme IDs (N,), mel (n_mels, T))] -> padded phonemes/phoneme_mask (B, N), mel (B, n_mels, T)/frame_mask."""
    B, N, T = len(items), max(len(p) for p, _ in items), max(m.shape[1] for _, m in items)
    out = dict(phonemes=torch.zeros(B, N, dtype=torch.long), phoneme_mask=torch.zeros(B, N, dtype=torch.bool),
               mel=torch.zeros(B, items[0][1].shape[0], T), frame_mask=torch.zeros(B, T, dtype=torch.bool))
    for b, (p, m) in enumerate(items):
        out["phonemes"][b, :len(p)] = torch.as_tensor(np.asarray(p, np.int64))
        out["phoneme_mask"][b, :len(p)] = True
        out["mel"][b, :, :m.shape[1]] = m
        out["frame_mask"][b, :m.shape[1]] = True
    return out


def fit(items: list, phonemes: int | list[str], cfg: AlignerConfig, progress: bool = True, device: str = "cpu"):
    """Train an aligner on [(phoneme IDs, mel_frames)] for cfg.steps steps of cfg.batch_size random items (a pure
    function of cfg.seed) on `device` (monotonic alignment search runs on the CPU); `phonemes`: the inventory the
    IDs index (or its size). Items with fewer frames than phonemes cannot be aligned and must be left out first.
    Returns the aligner on the CPU, in eval mode."""
    from tqdm import tqdm
    bad = [i for i, (p, m) in enumerate(items) if m.shape[1] < len(p)]
    if bad:
        raise ValueError(f"{len(bad)} items have fewer frames than phonemes (first: item {bad[0]})")
    torch.manual_seed(cfg.seed)
    net = Aligner(phonemes, cfg).to(device)
    opt = torch.optim.AdamW(net.parameters(), cfg.lr, weight_decay=0.0)
    rng = np.random.default_rng(cfg.seed)
    bar = tqdm(range(cfg.steps), desc="aligner", unit="step", disable=not progress, dynamic_ncols=True,
               mininterval=0.5 if sys.stderr.isatty() else 30)
    for step in bar:
        batch = {k: v.to(device) for k, v in collate([items[i] for i in rng.integers(len(items),
                                                                                size=cfg.batch_size)]).items()}
        terms = losses(net, batch, with_bin=step >= cfg.bin_start * cfg.steps)
        opt.zero_grad()
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            bar.set_postfix({k: f"{float(v.detach()):.3f}" for k, v in terms.items()})
    return net.cpu().eval()


@torch.no_grad()
def durations(net: Aligner, items: list, batch_size: int = 16) -> list[np.ndarray]:
    """Hard durations in frames (each ≥ 1, summing to the item's frame count) for [(phoneme IDs, mel)]."""
    out = []
    for i in range(0, len(items), batch_size):
        chunk = items[i:i + batch_size]
        b = collate(chunk)
        hard = hard_alignment(net(b["phonemes"], b["phoneme_mask"], b["mel"], b["frame_mask"]),
                              b["phoneme_mask"], b["frame_mask"])
        out += [hard[k, :m.shape[1], :len(p)].sum(0).long().numpy() for k, (p, m) in enumerate(chunk)]
    return out


def to_codec_frames(d: np.ndarray, n_frames: int, hop: int) -> np.ndarray:
    """Durations in aligner frames of `hop` samples -> durations in codec frames (HOP samples) summing exactly to
    n_frames: each boundary is rounded to the nearest codec frame (a phoneme shorter than half a codec frame may get
    0 frames, as the toy corpus's eSpeak timings can)."""
    bounds = np.rint(np.cumsum(np.asarray(d, np.int64))[:-1] * hop / HOP).astype(np.int64)
    bounds = np.clip(np.maximum.accumulate(np.concatenate([[0], bounds])), 0, n_frames)
    return np.diff(np.append(bounds, n_frames))


def aligner_tokens(phonemes: list[str]) -> list[str]:
    """The sequence the aligner aligns: an optional pause (`text.OPTIONAL_PAUSE`, between two words) is a pause."""
    return [PAUSE if p == OPTIONAL_PAUSE else p for p in phonemes]


def drop_short_pauses(phonemes: list[str], durations: np.ndarray, min_frames: int = 4) -> tuple[list, np.ndarray]:
    """Resolve the optional pauses of an aligned sequence: one of ≥ min_frames frames (4 codec frames = 50 ms) is
    a pause the speaker made and becomes PAUSE; a shorter one is dropped, its frames split between the phonemes
    before and after it (the earlier one takes the odd frame). The total number of frames is unchanged."""
    out, d = [], []
    durations = np.asarray(durations, np.int64)
    carry = 0                                              # frames owed to the next phoneme
    for p, n in zip(phonemes, durations.tolist()):
        if p != OPTIONAL_PAUSE:
            out.append(p), d.append(n + carry)
            carry = 0
        elif n >= min_frames:
            out.append(PAUSE), d.append(n + carry)
            carry = 0
        else:
            first = (n + 1) // 2 if d else 0
            if d:
                d[-1] += first
            carry += n - first
    if carry:
        d[-1] += carry
    return out, np.asarray(d, np.int64)


def save(net: Aligner, path: Path, phonemes: list[str], front_end: str = ""):
    """Atomic checkpoint: weights, config, the phoneme inventory the IDs index and the text front end's name."""
    ck = dict(kind="aligner", config=asdict(net.cfg), phonemes=list(phonemes), front_end=front_end,
              model=net.state_dict())
    atomic_write(Path(path), lambda f: torch.save(ck, f))


def load(path: Path) -> tuple[Aligner, list[str]]:
    """(aligner in eval mode, its phoneme inventory); the front end's name is `front_end(path)`."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if ck.get("kind") != "aligner":
        raise ValueError(f"{path} is not an aligner checkpoint")
    net = Aligner(ck["phonemes"], AlignerConfig(**ck["config"]))
    net.load_state_dict(ck["model"])
    net.front_end = ck.get("front_end", "")
    return net.eval(), ck["phonemes"]


# ---------------------------------------------------------------------------------------------------------------
# The training items of a prepared cache
# ---------------------------------------------------------------------------------------------------------------
def cache_items(root, split: str, cfg: AlignerConfig, limit: int = 0) -> tuple[list, list]:
    """(utterances, [(phoneme IDs, mel_frames)]) of one split of a prepared cache (`corpus/data.py prepare`) that keeps
    its wavs (the toy corpus does)."""
    import json
    import soundfile as sf
    from corpus.features import audio_path
    root = Path(root)
    manifest = json.loads((root / "manifest.json").read_text())
    utts = [u for u in manifest["utterances"] if u["split"] == split][: limit or None]
    if not utts:
        raise ValueError(f"split {split!r} of {root} is empty")
    items = []
    for u in utts:
        if "wav" not in u:
            raise ValueError(f"{root} keeps no wavs (utterance {u['id']}): fit the aligner from the corpus instead")
        wav, sr = sf.read(audio_path(root, u), dtype="float32")
        if sr != SAMPLE_RATE:
            raise ValueError(f"{u['wav']}: {sr} Hz, expected {SAMPLE_RATE}")
        with np.load(root / "feats" / f"{u['id']}.npz") as f:
            items.append((f["phonemes"].astype(np.int64), mel_frames(wav, cfg)))
    return utts, items
