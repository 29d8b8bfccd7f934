"""Neural audio codec (paper §3.1): conv encoder (stride 200 at 16 kHz), residual VQ, mirrored decoder.

    h = f_enc(x)  (B, D, T = L / 200)   ->   z = RVQ(h) = Σ_j e_j  (Eq. 1, rvq.py)   ->   x̂ = f_dec(z)

One latent frame per 12.5 ms (80 frames/s): the sequence the diffusion model generates. The paper gives the
codebook sizes (Table 11: R = 16 quantizers × V = 1024 codes × D = 256, 27M parameters) and says the losses
"follow SoundStream"; strides, channels, discriminators and loss weights are ours (SoundStream/EnCodec-style):

    encoder  conv7(1→C) · [residual units (dilations 1, 3, 9) → ELU → strided conv(C→2C)] × 4 · conv3(→D)
             strides (2, 4, 5, 5): 2·4·5·5 = 200; the decoder mirrors it with transposed convs
    losses   time-domain L1, multi-resolution log-mel L1, commitment (rvq.py), and after a warm-up the
             adversarial (least squares) + feature-matching losses of two discriminators: multi-period
             (HiFi-GAN) on the waveform and multi-resolution complex STFT (EnCodec).

`generator_losses` returns every term in a dict keyed by name; the weights live in `CodecConfig`, and the total is
formed in one place (`total_loss`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from rvq import ResidualVQ


@dataclass
class CodecConfig:
    sample_rate: int = 16000
    channels: int = 52                      # C: first encoder block's width, doubled at every downsampling
    strides: tuple = (2, 4, 5, 5)           # total 200 = hop: 12.5 ms per latent frame (§3.1)
    dilations: tuple = (1, 3, 9)            # residual units per block (SoundStream/EnCodec)
    dim: int = 256                          # D: latent and code dimension (Table 11)
    n_q: int = 16                           # R: quantizers (Table 11)
    codebook_size: int = 1024               # V: codes per quantizer (Table 11)
    ema_decay: float = 0.99                 # codebook EMA decay
    quantizer_dropout: float = 0.5          # probability of training a batch with a random 1..R quantizers
    disc_channels: int = 32                 # base width of each discriminator
    periods: tuple = (2, 3, 5, 7, 11)       # multi-period discriminator (HiFi-GAN)
    stft_ffts: tuple = (1024, 512, 256)     # multi-resolution STFT discriminator (EnCodec)
    mel_ffts: tuple = (256, 512, 1024, 2048)  # multi-resolution mel loss; hop = n_fft / 4
    w_time: float = 0.1                     # loss weights, as EnCodec's λ_t, λ_f, λ_g, λ_feat, λ_w
    w_mel: float = 1.0
    w_adv: float = 1.0
    w_feat: float = 2.0
    w_commit: float = 1.0

    @property
    def hop(self) -> int:
        return int(np.prod(self.strides))


# ---------------------------------------------------------------------------------------------------------------
# Spectral features (shared by the losses and evaluation/metrics.py)
# ---------------------------------------------------------------------------------------------------------------
# Floor on STFT magnitudes (normalised so a full-scale sine peaks near 0.5) before the log: the toy corpus has
# stretches of exact digital silence, where log(0) would dominate the loss. 1e-5 is ~100 dB below full scale; at
# 1e-3, 85-94% of the toy corpus's log-mel values sat on the floor and the loss ignored most of the spectrum.
MAG_FLOOR = 1e-5


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """Triangular filters on the HTK mel scale, mel = 2595 log10(1 + f/700), each normalised to unit area:
    (n_mels, n_fft // 2 + 1)."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)
    edges = hz(np.linspace(0, mel(sample_rate / 2), n_mels + 2))
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.maximum(0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    fb /= np.maximum(fb.sum(1, keepdims=True), 1e-8)
    return torch.tensor(fb, dtype=torch.float32)


_FB_CACHE: dict = {}


def stft(wav: torch.Tensor, n_fft: int, hop: int | None = None) -> torch.Tensor:
    """Complex STFT of wav (B, L) with a Hann window, scaled so a full-scale sine peaks near 0.5: (B, F, frames)."""
    hop = hop or n_fft // 4
    window = torch.hann_window(n_fft, device=wav.device, dtype=wav.dtype)
    return torch.stft(wav, n_fft, hop, window=window, return_complex=True) / window.sum()


def log_mel(wav: torch.Tensor, n_fft: int = 1024, hop: int | None = None, n_mels: int | None = None) -> torch.Tensor:
    """log(max(mel magnitude, MAG_FLOOR)) of wav (B, L) -> (B, n_mels, frames); n_mels defaults to min(80, n_fft/4)."""
    n_mels = n_mels or min(80, n_fft // 4)
    key = (n_fft, n_mels, wav.device)
    if key not in _FB_CACHE:
        _FB_CACHE[key] = mel_filterbank(16000, n_fft, n_mels).to(wav.device)
    mag = stft(wav.float(), n_fft, hop).abs()
    return torch.log(torch.clamp(_FB_CACHE[key] @ mag, min=MAG_FLOOR))


# ---------------------------------------------------------------------------------------------------------------
# Generator: encoder, RVQ, decoder
# ---------------------------------------------------------------------------------------------------------------
class ResidualUnit(nn.Module):
    """x + conv1x1(ELU(dilated conv7(ELU(x)))): the receptive-field builder of SoundStream/EnCodec."""

    def __init__(self, ch: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(ch, ch, 7, dilation=dilation, padding=3 * dilation)
        self.proj = nn.Conv1d(ch, ch, 1)

    def forward(self, x):
        return x + self.proj(F.elu(self.conv(F.elu(x))))


class Down(nn.Module):
    """Residual units, then a strided conv (kernel 2s, stride s): (B, C, L) -> (B, 2C, L/s) exactly."""

    def __init__(self, ch: int, stride: int, dilations):
        super().__init__()
        self.res = nn.Sequential(*[ResidualUnit(ch, d) for d in dilations])
        self.conv = nn.Conv1d(ch, 2 * ch, 2 * stride, stride=stride)
        self.stride = stride

    def forward(self, x):
        s = self.stride
        return self.conv(F.pad(F.elu(self.res(x)), (s - s // 2, s // 2)))


class Up(nn.Module):
    """Transposed conv (kernel 2s, stride s) cropped to (B, C/2, T·s), then residual units: Down's mirror."""

    def __init__(self, ch: int, stride: int, dilations):
        super().__init__()
        self.conv = nn.ConvTranspose1d(ch, ch // 2, 2 * stride, stride=stride)
        self.res = nn.Sequential(*[ResidualUnit(ch // 2, d) for d in dilations])
        self.stride = stride

    def forward(self, x):
        s = self.stride
        y = self.conv(F.elu(x))                                     # (B, C/2, T·s + s)
        return self.res(y[..., s // 2: y.shape[-1] - (s - s // 2)])


class Codec(nn.Module):
    """§3.1: x (B, L) at 16 kHz <-> z (B, D, L/200) <-> ids (B, R, L/200)."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.cfg = cfg
        C, chans = cfg.channels, [cfg.channels * 2 ** i for i in range(len(cfg.strides) + 1)]
        self.encoder = nn.Sequential(nn.Conv1d(1, C, 7, padding=3),
                                     *[Down(chans[i], s, cfg.dilations) for i, s in enumerate(cfg.strides)],
                                     nn.ELU(), nn.Conv1d(chans[-1], cfg.dim, 3, padding=1))
        self.rvq = ResidualVQ(cfg.n_q, cfg.codebook_size, cfg.dim, cfg.ema_decay,
                              quantizer_dropout=cfg.quantizer_dropout)
        self.decoder = nn.Sequential(nn.Conv1d(cfg.dim, chans[-1], 7, padding=3),
                                     *[Up(chans[i + 1], s, cfg.dilations) for i, s in reversed(list(enumerate(cfg.strides)))],
                                     nn.ELU(), nn.Conv1d(C, 1, 7, padding=3))

    def _check(self, wav: torch.Tensor, sample_rate: int | None) -> torch.Tensor:
        """wav (B, L) or (B, 1, L) -> (B, L) padded with zeros to a multiple of the hop; clear errors otherwise."""
        if sample_rate is not None and sample_rate != self.cfg.sample_rate:
            raise ValueError(f"audio is {sample_rate} Hz, the codec expects {self.cfg.sample_rate} Hz: resample first")
        if wav.dim() == 3:
            if wav.shape[1] != 1:
                raise ValueError(f"expected mono audio, got {wav.shape[1]} channels: mix down first (features.load_audio does)")
            wav = wav[:, 0]
        if wav.dim() != 2:
            raise ValueError(f"expected audio shaped (batch, samples), got {tuple(wav.shape)}")
        if wav.shape[-1] == 0:
            raise ValueError("audio is empty")
        if not torch.isfinite(wav).all():
            raise ValueError("audio contains NaN or inf")
        return F.pad(wav, (0, -wav.shape[-1] % self.cfg.hop))

    def forward(self, wav: torch.Tensor, n_q: int | None = None) -> dict:
        """Training pass: x -> h -> z (straight-through) -> x̂, cropped back to the input length."""
        L = wav.shape[-1]
        x = self._check(wav, None)
        h = self.encoder(x[:, None])                                 # (B, D, T)
        z, ids, commit = self.rvq(h, n_q)
        return dict(wav=self.decoder(z)[:, 0, :L], z=z, ids=ids, commit=commit)

    @torch.no_grad()
    def encode(self, wav: torch.Tensor, sample_rate: int | None = None, n_q: int | None = None):
        """wav (B, L) -> (z (B, D, T), ids (B, R, T)), T = ceil(L / 200) (the tail is zero-padded)."""
        h = self.encoder(self._check(wav, sample_rate)[:, None])
        ids = self.rvq.encode(h, n_q)
        return self.rvq.decode(ids), ids

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, D, T) -> wav (B, T · 200)."""
        if z.dim() != 3 or z.shape[1] != self.cfg.dim:
            raise ValueError(f"expected a latent shaped (batch, {self.cfg.dim}, frames), got {tuple(z.shape)}")
        return self.decoder(z)[:, 0]

    def decode_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, n ≤ R, T) -> wav (B, T · 200), through Eq. 1's sum of code vectors."""
        return self.decode(self.rvq.decode(ids))


# ---------------------------------------------------------------------------------------------------------------
# Discriminators
# ---------------------------------------------------------------------------------------------------------------
def conv_stack(convs: nn.ModuleList, out: nn.Module, x: torch.Tensor, slope: float):
    """A sub-discriminator's body: conv + leaky ReLU per layer, then the output conv -> (logits, every layer's
    activations for the feature-matching loss)."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), slope)
        feats.append(x)
    return out(x), feats


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN's sub-discriminator: the waveform folded into (L/p, p) and seen by 2-D convs along time."""

    def __init__(self, period: int, ch: int):
        super().__init__()
        self.period = period
        widths = [1, ch, 4 * ch, 16 * ch, 16 * ch]
        self.convs = nn.ModuleList([nn.Conv2d(widths[i], widths[i + 1], (5, 1), (3 if i < 3 else 1, 1), (2, 0))
                                    for i in range(4)])
        self.out = nn.Conv2d(widths[-1], 1, (3, 1), padding=(1, 0))

    def forward(self, x):                                                   # x (B, L)
        x = F.pad(x, (0, -x.shape[-1] % self.period), mode="reflect")
        x = x.reshape(x.shape[0], 1, -1, self.period)                      # (B, 1, L/p, p)
        return conv_stack(self.convs, self.out, x, 0.1)


class STFTDiscriminator(nn.Module):
    """EnCodec's sub-discriminator: 2-D convs over the complex STFT (real and imaginary parts as 2 channels)."""

    def __init__(self, n_fft: int, ch: int):
        super().__init__()
        self.n_fft = n_fft
        self.convs = nn.ModuleList([nn.Conv2d(2, ch, (3, 9), padding=(1, 4))] +
                                   [nn.Conv2d(ch, ch, (3, 9), (1, 2), padding=(d, 4), dilation=(d, 1)) for d in (1, 2, 4)] +
                                   [nn.Conv2d(ch, ch, (3, 3), padding=(1, 1))])
        self.out = nn.Conv2d(ch, 1, (3, 3), padding=(1, 1))

    def forward(self, x):                                                   # x (B, L)
        s = stft(x, self.n_fft) * 10                                       # ~unit scale for speech
        x = torch.stack([s.real, s.imag], 1).transpose(2, 3)               # (B, 2, frames, F)
        return conv_stack(self.convs, self.out, x, 0.2)


class Discriminators(nn.Module):
    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.discs = nn.ModuleList([PeriodDiscriminator(p, cfg.disc_channels) for p in cfg.periods] +
                                   [STFTDiscriminator(n, cfg.disc_channels) for n in cfg.stft_ffts])

    def forward(self, x):
        """x (B, L) -> list of (logits, features) per sub-discriminator."""
        return [d(x) for d in self.discs]


# ---------------------------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------------------------
def mel_loss(x: torch.Tensor, x_hat: torch.Tensor, ffts) -> torch.Tensor:
    """Multi-resolution log-mel L1: mean over resolutions n of mean |log mel_n(x) − log mel_n(x̂)|."""
    return sum((log_mel(x, n) - log_mel(x_hat, n)).abs().mean() for n in ffts) / len(ffts)


def discriminator_loss(disc: Discriminators, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN: mean over sub-discriminators k of E[(1 − D_k(x))²] + E[D_k(x̂)²]."""
    both = disc(torch.cat([x, x_hat.detach()]))            # one forward (as DistributedDataParallel requires)
    B = len(x)
    return sum(((1 - d[:B]) ** 2).mean() + (d[B:] ** 2).mean() for d, _ in both) / len(both)


def generator_losses(cfg: CodecConfig, x: torch.Tensor, out: dict, disc: Discriminators | None = None) -> dict:
    """Every generator loss term, keyed by name (the adversarial ones only when `disc` is given):
        time    mean |x − x̂|
        mel     multi-resolution log-mel L1 (`mel_loss`)
        commit  RVQ commitment (rvq.py)
        adv     mean_k E[(1 − D_k(x̂))²]
        feat    mean_k mean_l |f_kl(x) − f_kl(x̂)| / mean |f_kl(x)|   (feature matching, scale-free as EnCodec)
    """
    x_hat = out["wav"]
    losses = dict(time=(x - x_hat).abs().mean(), mel=mel_loss(x, x_hat, cfg.mel_ffts), commit=out["commit"])
    if disc is not None:
        with torch.no_grad():
            real = disc(x)
        fake = disc(x_hat)
        losses["adv"] = sum(((1 - f) ** 2).mean() for f, _ in fake) / len(fake)
        feat = [(fr - ff).abs().mean() / (fr.abs().mean() + 1e-5)
                for (_, fr_list), (_, ff_list) in zip(real, fake) for fr, ff in zip(fr_list, ff_list)]
        losses["feat"] = sum(feat) / len(feat)
    return losses


def total_loss(cfg: CodecConfig, losses: dict) -> torch.Tensor:
    """The one place the generator's loss is formed: Σ_k w_k · loss_k over the terms present."""
    return sum(getattr(cfg, f"w_{k}") * v for k, v in losses.items())


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def read_checkpoint(path, kind: str, what: str) -> dict:
    """The checkpoint at `path` if it is of this kind ("codec", "ldm"), else a one-line error naming `what` it should
    be. Loads with `torch.load(weights_only=True)`: tensors and plain containers only, never arbitrary pickled code."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {path}") from None
    except Exception as e:   # truncated file, not a torch file, pickled objects ...
        raise ValueError(f"{path} is not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != kind:
        found = ckpt.get("kind") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path} is a {found!r} checkpoint, not a {what} checkpoint")
    return ckpt


def load_weights(module: nn.Module, state: dict, path, what: str) -> nn.Module:
    """Load a checkpoint's weights (fp16 in an export) into `module` as fp32; only the codebooks' EMA statistics,
    which exports leave out, may be missing."""
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    missing, unexpected = module.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"rvq.cluster_size", "rvq.embed_sum"}:
        raise ValueError(f"{path} does not match the current {what} code (missing {missing}, unexpected {unexpected}): "
                         f"retrain or use the code version it was trained with")
    return module


def load_codec(path, device: str = "cpu") -> Codec:
    """Rebuild a codec (config + weights) from a checkpoint written by `train.py codec` or `train.py export`
    (exports store weights in fp16 and leave out the EMA statistics only training needs)."""
    ckpt = read_checkpoint(path, "codec", "codec")
    cfg = CodecConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["config"].items()})
    return load_weights(Codec(cfg), ckpt["model"], path, "codec").to(device).eval()
