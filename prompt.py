"""Speech prompting for in-context learning (paper §3.3).

Training: a random segment z_{u:v} of the utterance's own latent is the *prompt*; the *target* is the rest,
concat(z_{1:u}, z_{v:n}), and the losses are computed on the target only. Inference: the prompt is a few seconds
of another utterance of the target speaker. The prompt reaches the model in two ways:

    prompt encoder      a Transformer "as the phoneme encoder" (prior.ConvFFNTransformer) over z_{u:v} -> hiddens
    duration / pitch    Q-K-V attention inside the predictors: query = conv hiddens, key/value = prompt hiddens
                        (prior.VariancePredictor)
    diffusion           two attention blocks: (1) m = 32 learned queries attend to the prompt hiddens -> m vectors
                        (`QueryAttention`); (2) the WaveNet hiddens attend to those m vectors (`PromptAttention`),
                        and the result drives a FiLM layer, scale · x + bias (`FiLM`). Attending to the prompt
                        hiddens directly "exposes too many details" of the prompt and hurts generation.

Masks are (B, T) bool, True on real positions.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from prior import ConvFFNTransformer


# ---------------------------------------------------------------------------------------------------------------
# Prompt segments (training)
# ---------------------------------------------------------------------------------------------------------------
def sample_prompt_segment(lengths: torch.Tensor, min_frac: float = 0.1, max_frac: float = 0.4,
                          min_frames: int = 24, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """A random prompt span [u, v) per utterance of `lengths` (B,) frames -> (u, v), each (B,) long.

    Our choice (the paper gives no range): the prompt covers a uniform fraction in [min_frac, max_frac] of the
    utterance, but at least `min_frames` (24 frames = 0.3 s) and always leaving at least as many target frames;
    its start u is uniform over the positions where it fits. Toy utterances (~3 s) get 0.3–1.2 s prompts; the
    evaluation prompts (another utterance, ~3 s) are longer than most training ones, which the attention handles.
    """
    lengths = lengths.long()
    if (lengths < 2 * min_frames).any():
        raise ValueError(f"utterances need at least {2 * min_frames} frames for a prompt and a target, "
                         f"got {int(lengths.min())}")
    frac = min_frac + (max_frac - min_frac) * torch.rand(len(lengths), generator=generator)
    span = (frac * lengths).long().clamp(min=min_frames)
    span = torch.minimum(span, lengths - min_frames)
    u = (torch.rand(len(lengths), generator=generator) * (lengths - span + 1)).long()
    return u, u + span


def take_segment(x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompt: x[b, :, u_b:v_b] for each b, left-aligned and padded -> (x_prompt (B, C, max span), mask)."""
    span = v - u
    idx = u[:, None] + torch.arange(int(span.max()), device=x.device)[None]         # (B, S)
    mask = idx < v[:, None]
    gathered = torch.gather(x, 2, idx.clamp(max=x.shape[-1] - 1)[:, None].expand(-1, x.shape[1], -1))
    return gathered * mask[:, None], mask


def remove_segment(x: torch.Tensor, mask: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
    """The target: concat(x_{1:u}, x_{v:n}) per utterance, left-aligned and padded -> (x_target (B, C, T'), mask').

    Applied alike to the latent z, the condition c and every frame-level tensor, so they stay aligned; the
    denoiser never sees the prompt frames inside its target sequence.
    """
    B, C, T = x.shape
    keep = mask.clone()
    pos = torch.arange(T, device=x.device)[None]
    keep &= ~((pos >= u[:, None]) & (pos < v[:, None]))                            # (B, T): target frames
    n = keep.sum(1)
    order = torch.argsort((~keep).float() * T + pos.float(), dim=1, stable=True)  # kept frames first, in order
    T2 = int(n.max())
    idx = order[:, :T2]
    new_mask = torch.arange(T2, device=x.device)[None] < n[:, None]
    return torch.gather(x, 2, idx[:, None].expand(-1, C, -1)) * new_mask[:, None], new_mask


# ---------------------------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------------------------
class PromptEncoder(nn.Module):
    """Latent prompt (B, latent_dim, Tp) -> prompt hiddens (B, dim, Tp): a 1x1 projection, then the same
    conv-FFN Transformer as the phoneme encoder (Table 11: 6 layers, 512 wide, 8 heads, FFN 2048, kernel 9)."""

    def __init__(self, latent_dim: int, dim: int, layers: int, heads: int, ffn_dim: int, kernel: int, dropout: float):
        super().__init__()
        self.proj = nn.Conv1d(latent_dim, dim, 1)
        self.transformer = ConvFFNTransformer(dim, layers, heads, ffn_dim, kernel, dropout)

    def forward(self, prompt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.transformer(self.proj(prompt) * mask[:, None], mask)


class QueryAttention(nn.Module):
    """First attention block of the diffusion prompting: m learned query vectors attend to the prompt hiddens,
    Attention(Q = learned (m, dim), K = V = prompt hiddens) -> (B, dim, m). However long the prompt, the
    denoiser sees m summary vectors, not its frame-by-frame details."""

    def __init__(self, dim: int, m: int = 32, heads: int = 8, init_std: float = 1.0):
        super().__init__()
        # Departure from the paper (it gives no initialisation): queries of std 1 (norm about dim^1/2). With init_std 0,
        # queries of std dim^-1/2 (about unit norm), the attention logits barely vary over the prompt at the start and
        # the m rows stayed one mean through training (pairwise cosine 0.996 on a toy model; docs/quality.md)
        self.queries = nn.Parameter(torch.randn(m, dim) * (init_std or dim ** -0.5))
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, prompt_h: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
        # BEGIN SOLUTION 7
        # Provides: return (B, dim, m): the m learned queries' attention over the prompt frames (padding left out).
        kv = prompt_h.transpose(1, 2)                                                 # (B, Tp, dim)
        q = self.queries[None].expand(len(kv), -1, -1)                                # (B, m, dim)
        out, _ = self.attn(q, kv, kv, key_padding_mask=~prompt_mask)
        return out.transpose(1, 2)                                                    # (B, dim, m)
        # END SOLUTION

    @torch.no_grad()
    def weights(self, prompt_h: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
        """The attention weights of every head: (B, heads, m, Tp); each row sums to 1 over the prompt frames."""
        kv = prompt_h.transpose(1, 2)
        q = self.queries[None].expand(len(kv), -1, -1)
        _, w = self.attn(q, kv, kv, key_padding_mask=~prompt_mask, need_weights=True, average_attn_weights=False)
        return w


def query_diversity(weights: torch.Tensor) -> dict:
    """How far the m queries' attention rows are from one shared mean, for weights (B, heads, m, Tp) over one
    unpadded prompt each (B prompts of the same length, or call once per prompt).

    entropy: mean over rows of H(a) = -sum_t a_t ln a_t (nats); uniform: ln Tp, the entropy of equal weights (a
    row that pools the mean); cosine: the mean pairwise cosine similarity of the m rows within a head (1: every
    query looks at the same frames with the same weights, so the m prompt vectors are one vector repeated).
    """
    w = weights.clamp_min(1e-12)
    entropy = -(w * w.log()).sum(-1).mean()
    rows = torch.nn.functional.normalize(weights, dim=-1)
    cos = rows @ rows.transpose(-1, -2)                                     # (B, heads, m, m)
    m = cos.shape[-1]
    off = (cos.sum((-1, -2)) - cos.diagonal(dim1=-2, dim2=-1).sum(-1)) / (m * (m - 1))
    return dict(entropy=float(entropy), uniform=float(torch.log(torch.tensor(float(weights.shape[-1])))),
                cosine=float(off.mean()))


class PromptAttention(nn.Module):
    """Second attention block (inside a WaveNet layer, Fig. 4): query = WaveNet hiddens (B, C, T), key/value =
    the m prompt vectors (B, dim, m) (or, for the "no query attention" ablation, the prompt hiddens with their
    mask) -> (B, C, T), fed to a FiLM layer."""

    def __init__(self, channels: int, dim: int, heads: int = 8):
        super().__init__()
        self.attn = nn.MultiheadAttention(channels, heads, kdim=dim, vdim=dim, batch_first=True)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None = None):
        kv = memory.transpose(1, 2)                                                   # (B, m, dim)
        out, _ = self.attn(x.transpose(1, 2), kv, kv,
                           key_padding_mask=None if memory_mask is None else ~memory_mask)
        return out.transpose(1, 2)                                                    # (B, C, T)


class FiLM(nn.Module):
    """Feature-wise linear modulation: FiLM(x, a) = γ(a) ⊙ x + β(a), with γ, β linear (1x1 conv) in the
    attention output a. Initialised to the identity (γ = 1, β = 0), so an untrained prompt path changes nothing."""

    def __init__(self, channels: int, cond_channels: int):
        super().__init__()
        self.proj = nn.Conv1d(cond_channels, 2 * channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        with torch.no_grad():
            self.proj.bias[:channels] = 1.0

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        # BEGIN SOLUTION 7
        # Provides: return γ(a) ⊙ x + β(a), shaped like x.
        gamma, beta = self.proj(a).chunk(2, dim=1)                                   # (B, C, T) each
        return gamma * x + beta
        # END SOLUTION
