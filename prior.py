"""Prior model (paper §3.2 "prior", with the prompting of §3.3 inside its predictors).

The prior turns a phoneme sequence into the frame-level condition `c` that the latent diffusion model is
conditioned on:

    h        = PhonemeEncoder(phonemes)                      (B, D, N)  Transformer blocks with a conv FFN
    log d̂    = DurationPredictor(h, prompt)                  (B, N)     conv stack + attention to the prompt (§3.3)
    h_frames = LengthRegulator(h, d)                         (B, D, T)  phoneme n repeated d_n times, T = Σ_n d_n
    lf0̂      = PitchPredictor(h_frames, prompt)              (B, T)     same structure as the duration predictor
    c        = h_frames + PitchEmbed(lf0)                    (B, D, T)

Training uses the ground truth: d = the aligner's durations, lf0 = the frame-level log-F0 from corpus/data.py. Inference uses
the predictions: d = round(exp(log d̂) − 1), lf0 = lf0̂. The two losses (§3.2, "L1 duration loss and L1 pitch loss")
join the diffusion loss in the total `L = L_diff + L_dur + L_pitch`:

    L_dur   = mean_n |log d̂_n − log(d_n + 1)|        (`duration_loss`: L1 on log durations)
    L_pitch = mean_t |lf0̂_t − lf0_t|                  (`pitch_loss`: L1 on log-F0)

Prompting (§3.3): after every 3 conv layers of each predictor, a Q-K-V attention layer lets the conv hiddens
(query) read the prompt hiddens (key/value) from the prompt encoder (prompt.py), so that duration and pitch follow
the prompt's speaker and style. Switching it off (`use_prompt=False`) is Table 9's "no prompt in duration/pitch".

Shapes: sequences channels first `(B, C, T)`; masks `(B, T)` bool, True on real positions. Padding never reaches a
real position: attention masks padded keys, convs see zeros at padded positions, and outputs are zeroed there.
"""
from __future__ import annotations

from dataclasses import dataclass
import math
from typing import NamedTuple

import torch
import torch.nn as nn


@dataclass
class PriorConfig:
    n_phonemes: int = 100          # vocabulary size incl. <pad> = 0 (set from the data's phoneme set)
    dim: int = 512                 # hidden size of encoder and predictors (Table 11)
    enc_layers: int = 6            # phoneme encoder: Transformer layers (Table 11)
    enc_heads: int = 8             # attention heads (Table 11)
    enc_ffn: int = 2048            # width of the conv FFN (Table 11)
    enc_kernel: int = 9            # kernel of the FFN's first conv (Table 11)
    enc_dropout: float = 0.2       # (Table 11)
    pred_convs: int = 30           # conv layers per predictor (Table 11)
    pred_attn_every: int = 3       # one prompt-attention layer per 3 convs → 10 (Table 11)
    pred_heads: int = 8            # heads of the prompt attention (Table 11)
    dur_kernel: int = 3            # duration predictor conv kernel (Table 11)
    pitch_kernel: int = 5          # pitch predictor conv kernel (Table 11)
    pred_dropout: float = 0.5      # (Table 11)
    prompt_dim: int = 512          # width of the prompt hiddens the predictors attend to (prompt encoder's dim)
    use_prompt: bool = True        # False: Table 9's ablation "no prompt in duration/pitch" (no attention layers)
    pitch_bins: int = 0            # 0: pitch enters c linearly (1×1 conv of log-F0); > 0: an embedding of log-F0
    pitch_min_hz: float = 40.0     # ... quantized into `pitch_bins` log-spaced bins between these (FastSpeech 2's
    pitch_max_hz: float = 800.0    # pitch embedding; the paper only says pitch is "added"): BinnedPitchEmbedding


# ---------------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------------
def sinusoidal_positions(T: int, dim: int, like: torch.Tensor) -> torch.Tensor:
    """Transformer positional encoding (D, T): sin(t / 10000^(2i/D)) in the first half, cos in the second.

    Attention alone is permutation-invariant (shuffle the inputs and the outputs shuffle the same way), so without
    it the encoder could not tell "cat" from "act"; the conv FFN sees order only within its kernel.
    """
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=like.device, dtype=torch.float32) / half)
    angle = freq[:, None] * torch.arange(T, device=like.device, dtype=torch.float32)[None]   # (D/2, T)
    pe = torch.cat([angle.sin(), angle.cos(), angle.new_zeros(dim - 2 * half, T)])            # (D, T)
    return pe.to(like.dtype)


class Dropout(nn.Module):
    """Inverted dropout, x ⊙ 1[u ≥ p] / (1 − p) with u ~ U[0, 1) per element: nn.Dropout's distribution and
    scaling, its mask drawn by torch.rand, which on a CPU is about twice as fast as the bernoulli_ of nn.Dropout
    (dropout was 8-11% of a training step). Identity in eval mode."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        u = torch.rand(x.shape, device=x.device)
        if x.dtype == torch.float32:         # the mask scaled in place: the same values, one pass fewer each way
            return x * u.ge_(self.p).mul_(1 / (1 - self.p))
        return x * (u >= self.p) * (1 / (1 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _odd(kernel: int) -> int:
    if kernel % 2 == 0:
        raise ValueError(f"conv kernels must be odd to keep the sequence length (got {kernel})")
    return kernel


def attend(attn: nn.MultiheadAttention, q: torch.Tensor, kv: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
    """attn(Q = q, K = V = kv) (B, T, D) with key padding mask `pad` (B, Tk), True = ignore. The same attention by
    either of PyTorch's two paths: the fused kernel (scaled_dot_product_attention) in fp32; under CPU autocast the
    explicit softmax(QKᵀ/√d)·V of matrix products, which need_weights=True selects, since the fused kernel's bf16
    backward is 2-6 times slower there (the weights it also returns are dropped)."""
    explicit = q.device.type == "cpu" and torch.is_autocast_enabled("cpu")
    return attn(q, kv, kv, key_padding_mask=pad, need_weights=explicit)[0]


class _FFTBlock(nn.Module):
    """One FastSpeech-style block on (B, T, D): self-attention, then a conv FFN (kernel k, then kernel 1), post-LN."""

    def __init__(self, dim, heads, ffn_dim, kernel, dropout):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.conv1 = nn.Conv1d(dim, ffn_dim, _odd(kernel), padding=kernel // 2)   # dim → ffn, kernel k
        self.conv2 = nn.Conv1d(ffn_dim, dim, 1)                                    # ffn → dim, kernel 1
        self.drop = Dropout(dropout)

    def forward(self, x, mask):                     # x (B, T, D), mask (B, T)
        pad = ~mask
        a = attend(self.attn, x, x, pad)
        x = self.norm1(x + self.drop(a)).masked_fill(pad[..., None], 0)
        y = torch.relu_(self.conv1(x.transpose(1, 2))).masked_fill(pad[:, None], 0)  # (B, F, T)
        y = self.conv2(y).transpose(1, 2)                                            # (B, T, D)
        return self.norm2(x + self.drop(y)).masked_fill(pad[..., None], 0)


class ConvFFNTransformer(nn.Module):
    """The paper's "Transformer blocks whose FFN is a conv net" (FastSpeech 2's FFT blocks), per block:

        x = LayerNorm(x + Dropout(MHSA(x)))
        x = LayerNorm(x + Dropout(Conv1d_1(ReLU(Conv1d_k(x)))))        Conv1d_k: dim → ffn_dim, Conv1d_1: ffn_dim → dim

    with a sinusoidal positional encoding added at the input. Kernel k then kernel 1 (FastSpeech 2) is what matches
    Table 11: 6 layers at 512/2048/k=9 have 69.2M parameters (prompt encoder: 69M; phoneme encoder: 72M, ours 69.3M
    with the embedding); two kernel-9 convs would give ~120M. Used by the phoneme encoder here and the prompt
    encoder in prompt.py. forward(x (B, dim, T), mask (B, T)) -> (B, dim, T), zero at padded positions.
    """

    def __init__(self, dim: int, layers: int, heads: int, ffn_dim: int, kernel: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be divisible by heads {heads}")
        self.dim = dim
        self.blocks = nn.ModuleList(_FFTBlock(dim, heads, ffn_dim, kernel, dropout) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + sinusoidal_positions(x.shape[-1], self.dim, x)              # (B, D, T)
        x = x.masked_fill(~mask[:, None], 0).transpose(1, 2)                # (B, T, D)
        for block in self.blocks:
            x = block(x, mask)
        return x.transpose(1, 2)                                            # (B, D, T)


def _check_phonemes(phonemes: torch.Tensor, mask: torch.Tensor, n_phonemes: int):
    if phonemes.dim() != 2 or phonemes.shape[1] == 0:
        raise ValueError(f"phonemes must be (B, N) with N >= 1, got shape {tuple(phonemes.shape)}")
    if mask.shape != phonemes.shape:
        raise ValueError(f"phoneme_mask {tuple(mask.shape)} must match phonemes {tuple(phonemes.shape)}")
    if not bool(mask.any(1).all()):
        raise ValueError("every utterance needs at least one real phoneme (a row of phoneme_mask is all False)")
    real = phonemes[mask]
    if int(real.max()) >= n_phonemes:
        raise ValueError(f"phoneme id {int(real.max())} >= n_phonemes {n_phonemes}")
    if int(real.min()) < 0:
        raise ValueError(f"phoneme id {int(real.min())} < 0")


class PhonemeEncoder(nn.Module):
    """Phoneme IDs (B, N) -> hiddens h (B, dim, N): embedding (ID 0 = <pad>) + ConvFFNTransformer (Table 11: 72M)."""

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.n_phonemes = cfg.n_phonemes
        self.embed = nn.Embedding(cfg.n_phonemes, cfg.dim, padding_idx=0)
        self.encoder = ConvFFNTransformer(cfg.dim, cfg.enc_layers, cfg.enc_heads, cfg.enc_ffn, cfg.enc_kernel,
                                          cfg.enc_dropout)

    def forward(self, phonemes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        _check_phonemes(phonemes, mask, self.n_phonemes)
        x = self.embed(phonemes.masked_fill(~mask, 0)).transpose(1, 2)    # (B, D, N); padded IDs are never read
        return self.encoder(x, mask)


class VariancePredictor(nn.Module):
    """Duration / pitch predictor (§3.2, same structure, separate weights), prompted as in §3.3:

        for i = 1..convs:   x = x + Dropout(LayerNorm(ReLU(Conv1d_k(x))))
                            every `attn_every` convs:  x = x + Dropout(Attn(Q = x, K = V = prompt))
        y = Conv1d_1(x)                                                         (B, T)

    The attention's key/value projections map prompt_dim → dim. With use_prompt=False there are no attention
    layers and the prompt is ignored. forward(x (B, dim, T), mask (B, T), prompt (B, prompt_dim, Tp),
    prompt_mask (B, Tp) or None = all real) -> (B, T), zero at padded positions.
    """

    def __init__(self, dim: int, convs: int, kernel: int, dropout: float, heads: int = 8, attn_every: int = 3,
                 prompt_dim: int | None = None, use_prompt: bool = True):
        super().__init__()
        self.use_prompt, self.attn_every = use_prompt, attn_every
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, _odd(kernel), padding=kernel // 2) for _ in range(convs))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(convs))
        p = prompt_dim or dim
        n_attn = convs // attn_every if use_prompt else 0
        self.attns = nn.ModuleList(nn.MultiheadAttention(dim, heads, kdim=p, vdim=p, batch_first=True)
                                   for _ in range(n_attn))
        self.drop = Dropout(dropout)
        self.out = nn.Conv1d(dim, 1, 1)

    @property
    def reach(self) -> int:
        """How many frames on each side one output frame depends on: the receptive field of the convs (the
        attention reads only the prompt)."""
        return sum(conv.dilation[0] * (conv.kernel_size[0] // 2) for conv in self.convs)

    def forward(self, x, mask, prompt=None, prompt_mask=None) -> torch.Tensor:
        keep = mask[:, None]                                                # (B, 1, T)
        if self.use_prompt:
            if prompt is None:
                raise ValueError("this predictor attends to the prompt (use_prompt=True): pass the prompt hiddens "
                                 "(B, prompt_dim, Tp), or build it with use_prompt=False")
            p_pad = None if prompt_mask is None else ~prompt_mask           # (B, Tp), True = ignore
            prompt = prompt.transpose(1, 2)                                 # (B, Tp, P)
            if p_pad is not None:
                prompt = prompt.masked_fill(p_pad[..., None], 0)
        attns = iter(self.attns)
        x = x.masked_fill(~keep, 0)
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            y = torch.relu_(conv(x.masked_fill(~keep, 0)))   # (B, D, T); in place: conv keeps its input
            x = x + self.drop(norm(y.transpose(1, 2)).transpose(1, 2))
            if self.use_prompt and (i + 1) % self.attn_every == 0:
                a = attend(next(attns), x.transpose(1, 2), prompt, p_pad)   # query = conv hiddens (B, T, D)
                x = x + self.drop(a.transpose(1, 2))
        return self.out(x.masked_fill(~keep, 0)).squeeze(1).masked_fill(~mask, 0)   # (B, T)


def compact(x: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The frames `keep` (B, T) of x (B, C, T), in order, left-aligned and zero-padded -> (x' (B, C, T'), mask'
    (B, T'), idx (B, T'): the frame of x each column came from, distinct in a row; T' = max_b Σ_t keep[b, t])."""
    T = keep.shape[1]
    order = torch.argsort(torch.where(keep, 0, T) + torch.arange(T, device=keep.device), dim=1)   # kept first
    n = keep.sum(1)
    idx = order[:, :int(n.max())]
    mask = torch.arange(idx.shape[1], device=keep.device)[None] < n[:, None]
    return torch.gather(x, 2, idx[:, None].expand(-1, x.shape[1], -1)) * mask[:, None], mask, idx


class Adjust(NamedTuple):
    """Changes to the predicted prosody at inference (`Prior.forward`)."""
    duration_scale: float = 1.0     # > 1 speaks slower: scales the predicted durations before rounding
    pitch_shift: float = 0.0        # added to the pitch that is embedded (log-F0 units; +log 2 = one octave up)


# ---------------------------------------------------------------------------------------------------------------
# Length regulator and durations
# ---------------------------------------------------------------------------------------------------------------
def length_regulate(h: torch.Tensor, durations: torch.Tensor, max_frames: int | None = None):
    """FastSpeech's length regulator: repeat phoneme hidden h[:, :, n] durations[b, n] times.

    h (B, C, N), durations (B, N) long -> (h_frames (B, C, T), frame_mask (B, T)). T = max_b Σ_n d[b, n], or
    exactly `max_frames` if given (frames beyond it are cut; training passes the latent length, which the
    durations sum to). A zero duration skips its phoneme; frames past an utterance's end are zero.
    Vectorised: frame t of utterance b reads phoneme idx = #{n : cumsum(d)[b, n] <= t}.
    """
    if h.shape[-1] == 0 or durations.shape != (h.shape[0], h.shape[-1]):
        raise ValueError(f"need h (B, C, N >= 1) and durations (B, N); got {tuple(h.shape)}, {tuple(durations.shape)}")
    if bool((durations < 0).any()):
        raise ValueError("durations must be >= 0")
    B, C, N = h.shape
    # BEGIN SOLUTION 6
    # Provides: return (h_frames (B, C, T), frame_mask (B, T) bool), padding frames zero.
    ends = durations.long().cumsum(1)                                       # (B, N): end frame (exclusive)
    total = ends[:, -1]                                                     # (B,)
    T = int(total.max()) if max_frames is None else int(max_frames)
    t = torch.arange(T, device=h.device).expand(B, T).contiguous()          # (B, T)
    idx = torch.searchsorted(ends, t, right=True).clamp(max=N - 1)          # (B, T) phoneme of each frame
    frame_mask = t < total[:, None]                                         # (B, T)
    h_frames = h.gather(2, idx[:, None, :].expand(B, C, T))                 # (B, C, T)
    return h_frames.masked_fill(~frame_mask[:, None], 0), frame_mask
    # END SOLUTION


MAX_FRAMES_PER_PHONEME = 10_000     # 125 s at 12.5 ms: only keeps the long cast finite when exp() overflows


def durations_from_log(log_d_hat: torch.Tensor, mask: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Inference: d = round((exp(log d̂) − 1) · scale), clamped >= 0, zero on padding -> (B, N) long.

    Inverts the training target log(d + 1) (see `duration_loss`). `scale` stretches speech (2 = twice as slow) and is
    applied before rounding, so fractional scales work. A real phoneme may get 0 frames: the aligner gives 0 frames
    to some phonemes too (corpus/data.py allows d >= 0) and the predictor learns it; forcing >= 1 would lengthen speech.
    """
    d = torch.round((torch.exp(log_d_hat.float()) - 1) * scale).clamp(0, MAX_FRAMES_PER_PHONEME).long()
    return d.masked_fill(~mask, 0)


# ---------------------------------------------------------------------------------------------------------------
# Losses (§3.2: "L1 duration loss and L1 pitch loss"); masked means over real positions
# ---------------------------------------------------------------------------------------------------------------
def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, x, 0).sum() / mask.sum().clamp(min=1)


def duration_loss(log_d_hat: torch.Tensor, durations: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_dur = mean over real phonemes of |log d̂ − log(d + 1)| (L1 on log durations).

    Durations span two orders of magnitude (0 to ~100 frames); on the log scale an error of one frame on a 2-frame
    phoneme counts more than on a 40-frame pause, as a listener hears it, and long pauses do not dominate the loss
    (FastSpeech's choice too). The +1 keeps log finite for 0-frame phonemes.
    """
    target = torch.log1p(torch.where(mask, durations, 0).float())           # padded garbage never reaches log
    return _masked_mean((log_d_hat - target).abs(), mask)


def pitch_loss(lf0_hat: torch.Tensor, lf0: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """L_pitch = mean over real frames of |lf0̂ − lf0| (L1 on log-F0).

    Unvoiced frames carry linearly interpolated log-F0 (corpus/data.py), so every real frame counts and log(0) never occurs.
    """
    target = torch.where(frame_mask, lf0, 0)
    return _masked_mean((lf0_hat - target).abs(), frame_mask)


# ---------------------------------------------------------------------------------------------------------------
# Pitch embedding
# ---------------------------------------------------------------------------------------------------------------
class BinnedPitchEmbedding(nn.Module):
    """PitchEmbed of `c = h_frames + PitchEmbed(lf0)` as a learned vector per pitch bin (`pitch_bins` = K > 0):

        PitchEmbed(lf0) = E[k(lf0)],   k = bucketize(lf0, K − 1 boundaries log-spaced over [min_hz, max_hz])

    (FastSpeech 2's pitch embedding; 256 bins over 40–800 Hz are 0.2 semitone wide). The paper says only that pitch
    is added; with `pitch_bins = 0` the prior uses a 1×1 conv, PitchEmbed(lf0) = w · lf0 + b: one direction of the
    hidden space, linear in log-F0, which the toy model trained with it barely used; the shipped toy model, trained
    with 256 bins, follows the pitch (docs/results-previous-corpus.md). Departure from the paper. lf0 (B, T) -> (B, D, T)."""

    def __init__(self, dim: int, bins: int, min_hz: float = 40.0, max_hz: float = 800.0):
        super().__init__()
        if bins < 2 or not 0 < min_hz < max_hz:
            raise ValueError(f"pitch_bins must be 0 or ≥ 2 and 0 < pitch_min_hz < pitch_max_hz, got {bins}, "
                             f"{min_hz}, {max_hz}")
        self.embed = nn.Embedding(bins, dim)
        self.register_buffer("boundaries", torch.linspace(math.log(min_hz), math.log(max_hz), bins - 1),
                             persistent=False)

    def forward(self, lf0: torch.Tensor) -> torch.Tensor:
        return self.embed(torch.bucketize(lf0.contiguous(), self.boundaries)).transpose(1, 2)


# ---------------------------------------------------------------------------------------------------------------
# The prior
# ---------------------------------------------------------------------------------------------------------------
class Prior(nn.Module):
    """Phoneme encoder + duration predictor + length regulator + pitch predictor + pitch embedding -> c (§3.2)."""

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.cfg = cfg
        pred = dict(dim=cfg.dim, convs=cfg.pred_convs, dropout=cfg.pred_dropout, heads=cfg.pred_heads,
                    attn_every=cfg.pred_attn_every, prompt_dim=cfg.prompt_dim, use_prompt=cfg.use_prompt)
        self.encoder = PhonemeEncoder(cfg)
        self.duration = VariancePredictor(kernel=cfg.dur_kernel, **pred)
        self.pitch = VariancePredictor(kernel=cfg.pitch_kernel, **pred)
        self.pitch_embed = nn.Conv1d(1, cfg.dim, 1) if cfg.pitch_bins == 0 else \
            BinnedPitchEmbedding(cfg.dim, cfg.pitch_bins, cfg.pitch_min_hz, cfg.pitch_max_hz)     # log-F0 → hidden

    def forward(self, phonemes, phoneme_mask, prompt, prompt_mask, durations=None, lf0=None,
                adjust: Adjust = Adjust(), unused_span=None) -> dict:
        """phonemes (B, N) long, phoneme_mask (B, N), prompt (B, prompt_dim, Tp), prompt_mask (B, Tp) or None.

        Training: pass the ground-truth durations (B, N) and lf0 (B, T); T = lf0's length, which must cover
        Σ_n d. Inference: leave them None; durations = durations_from_log(log d̂, adjust.duration_scale),
        lf0 = lf0̂. `adjust.pitch_shift` is added to the pitch that is embedded. `unused_span` (u, v), each (B,):
        frames [u, v) whose predicted pitch is not needed (the prompt span in training); the pitch predictor then
        skips most of them (`_predict_pitch`): lf0̂ is exactly as without it outside [u, v), meaningless inside.
        Returns c (B, dim, T), frame_mask (B, T), log_d_hat (B, N), lf0_hat (B, T), durations (B, N) used,
        lf0 (B, T) embedded.
        """
        h = self.encoder(phonemes, phoneme_mask)                            # (B, D, N)
        log_d_hat = self.duration(h, phoneme_mask, prompt, prompt_mask)     # (B, N)
        if durations is None:
            durations = durations_from_log(log_d_hat.detach(), phoneme_mask, adjust.duration_scale)
        durations = durations.masked_fill(~phoneme_mask, 0)
        max_frames = None
        if lf0 is not None:
            max_frames, need = lf0.shape[-1], int(durations.sum(1).max())
            if need > max_frames:
                raise ValueError(f"durations sum to {need} frames but lf0 has only {max_frames}")
        h_frames, frame_mask = length_regulate(h, durations, max_frames)   # (B, D, T), (B, T)
        if h_frames.shape[-1] == 0:     # every utterance predicted 0 frames: keep one (masked) frame for the convs
            h_frames, frame_mask = h.new_zeros(h.shape[0], h.shape[1], 1), frame_mask.new_zeros(h.shape[0], 1)
        lf0_hat = self._predict_pitch(h_frames, frame_mask, prompt, prompt_mask, unused_span)     # (B, T)
        pitch = (lf0_hat if lf0 is None else lf0) + adjust.pitch_shift
        pitch = pitch.masked_fill(~frame_mask, 0)
        c = h_frames + self.pitch_embed(pitch[:, None] if self.cfg.pitch_bins == 0 else pitch)     # (B, D, T)
        return dict(c=c.masked_fill(~frame_mask[:, None], 0), frame_mask=frame_mask, log_d_hat=log_d_hat,
                    lf0_hat=lf0_hat, durations=durations, lf0=pitch)

    def _predict_pitch(self, h_frames, frame_mask, prompt, prompt_mask, unused_span=None) -> torch.Tensor:
        """lf0̂ (B, T). With `unused_span` (u, v): frames deeper than the pitch predictor's reach r inside [u, v)
        (u + r ≤ t < v − r) are left out and the rest joined end to end (`compact`). Joining changes what frames
        within r of the seam see, and so, after all the convs, lf0̂ up to r frames from it: the r frames kept at
        each end of the span, never a frame outside it, which gets exactly the value of the whole sequence (the
        attention reads the prompt, not other frames). lf0̂ is 0 on the frames left out."""
        if unused_span is None:
            return self.pitch(h_frames, frame_mask, prompt, prompt_mask)
        u, v = unused_span
        r, t = self.pitch.reach, torch.arange(frame_mask.shape[1], device=frame_mask.device)[None]
        x, mask, idx = compact(h_frames, frame_mask & ~((t >= u[:, None] + r) & (t < v[:, None] - r)))
        y = self.pitch(x, mask, prompt, prompt_mask)                        # (B, T'), 0 on the padding
        return y.new_zeros(frame_mask.shape).scatter(1, idx, y)             # back to the frames' places

    @torch.no_grad()
    def init_predictor_offsets(self, mean_log_d: float, mean_lf0: float):
        """Start the predictors at the corpus means: the output bias of the duration predictor is set to
        mean_n log(d_n + 1) and that of the pitch predictor to mean_t lf0_t (training split), so that they learn
        only the deviations from them.

        Beyond the paper (which does not say how the predictors are initialised). Without it, a predictor must
        build an offset of ~5 (log-F0 of 150 Hz) in its residual stream from zero; the weights drift all through
        a short run, and the EMA of the weights, which lags the drift, predicts log-F0 ~0.13 too high."""
        self.duration.out.bias.fill_(mean_log_d)
        self.pitch.out.bias.fill_(mean_lf0)

    @staticmethod
    def losses(out: dict, durations, lf0, phoneme_mask, frame_mask) -> dict:
        """{"dur": L_dur, "pitch": L_pitch} on the ground truth; the composer adds both to the total loss."""
        return {"dur": duration_loss(out["log_d_hat"], durations, phoneme_mask),
                "pitch": pitch_loss(out["lf0_hat"], lf0, frame_mask)}
