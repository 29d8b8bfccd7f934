"""The one preset table, and the typed `--key=value` overrides that change a field of it.

A preset name (`tiny` for tests, `toy` for the CPU demo and the shipped checkpoints, `libritts` for one GPU,
`paper` for Table 11) sets every config at once: the codec (§3.1), the latent diffusion model with its prior and
prompt encoder (§3.2-3.3), both training stages (§4) and the aligner (§4.1). The component files hold the config
dataclasses, their defaults the paper's Table 11; this file holds the sizes each preset picks, and nothing else
holds any. `preset(name)` is a copy of one row (`.codec`, `.model`, `.codec_train`, `.ldm_train`, `.aligner`);
`model_config(name, n_phonemes, latent_dim)` fills in what only the data and the codec know.
`adamw(params, train_config)` is the optimizer both training stages build from their train config.

Overrides (minGPT's `merge_from_args`, typed): `--lr=5e-4 --prior.pitch_bins=256 --denoiser.use_prompt=false`,
each value converted once to the declared type of its field (`convert_override`); nested fields take a dot. A wrong
type, an unknown key (with a close match suggested) or a group of settings given a value is a one-line ValueError.
Imports only component files: the corpus code may read the aligner's presets from here.
"""
from __future__ import annotations

import copy
import difflib
import math
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace

import torch

from align import AlignerConfig
from codec import CodecConfig
from diffusion import DenoiserConfig, SDEConfig
from model import NS2Config
from prior import PriorConfig


@dataclass
class CodecTrainConfig:
    """Codec stage (§3.1, §4)."""
    steps: int = 200_000                # the paper trains 440K steps on 8 GPUs
    batch_size: int = 16
    segment: float = 1.0                # seconds of audio per example
    workers: int = 0                    # DataLoader worker processes reading (and resampling) batches ahead
    lr: float = 2e-4                    # §4: Adam, lr 2e-4
    betas: tuple = (0.8, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 1000            # linear lr warm-up
    min_lr_ratio: float = 0.1           # cosine decay to lr * min_lr_ratio at `steps`
    adv_start: int = 10_000             # steps trained on reconstruction losses only
    grad_clip: float = 5.0
    amp: str = "auto"                   # auto (bf16 on GPU, none on CPU) | bf16 | fp16 | none
    log_every: int = 50
    val_every: int = 2000
    ckpt_every: int = 500
    val_utts: int = 12                  # held-out clips scored at each validation (one per voice when possible)
    seed: int = 0


@dataclass
class LDMTrainConfig:
    """Latent diffusion stage (§3.2-3.3, §4)."""
    steps: int = 300_000                # §4: 300K steps on 16 GPUs
    batch_size: int = 16                # utterances per batch (when frames_per_batch is 0)
    frames_per_batch: int = 0           # > 0: length-bucketed batches of at most this many frames (§4: 6K per GPU)
    workers: int = 0                    # DataLoader worker processes reading and collating batches ahead
    lr: float = 5e-4                    # §4: AdamW, lr 5e-4
    betas: tuple = (0.9, 0.98)
    weight_decay: float = 0.01
    warmup_steps: int = 32_000          # §4: 32K warm-up steps, then inverse-square-root decay
    grad_clip: float = 1.0
    ema_decay: float = 0.999            # EMA of the weights, used for sampling
    amp: str = "auto"                   # auto: bf16 autocast on a GPU, and on a CPU with native bf16 for models of
                                        # 1M parameters and more; else fp32
    log_every: int = 50
    val_every: int = 2000
    ckpt_every: int = 1000
    sample_steps: int = 50              # sampler steps for the validation samples
    seed: int = 0


def adamw(params, tcfg) -> torch.optim.AdamW:
    """The optimizer of both stages (§4: AdamW) with a train config's lr, betas and weight decay, as the fused kernel
    (one pass over all parameters instead of a loop of small operations per tensor; the same update to float
    rounding)."""
    return torch.optim.AdamW(params, tcfg.lr, betas=tcfg.betas, weight_decay=tcfg.weight_decay, fused=True)


@dataclass
class Preset:
    """Every config one preset name sets."""
    codec: CodecConfig
    model: NS2Config                    # prior.n_phonemes and denoiser.latent_dim are set from the data: model_config
    codec_train: CodecTrainConfig
    ldm_train: LDMTrainConfig
    aligner: AlignerConfig = field(default_factory=AlignerConfig)


def _prompt_as_encoder(prior: PriorConfig) -> dict:
    """The prompt encoder sized as the phoneme encoder, as Table 11 builds it ("as the phoneme encoder")."""
    return dict(prompt_layers=prior.enc_layers, prompt_heads=prior.enc_heads, prompt_ffn=prior.enc_ffn,
                prompt_kernel=prior.enc_kernel, prompt_dropout=prior.enc_dropout)


_TINY_PRIOR = PriorConfig(dim=16, enc_layers=1, enc_heads=2, enc_ffn=32, pred_convs=3, pred_attn_every=3, pred_heads=2,
                          prompt_dim=16)
_TOY_PRIOR = PriorConfig(dim=64, enc_layers=2, enc_heads=2, enc_ffn=256, pred_convs=6, pred_attn_every=3, pred_heads=2,
                         prompt_dim=64)
_LIBRITTS_PRIOR = PriorConfig(dim=256, enc_layers=4, enc_heads=4, enc_ffn=1024, pred_convs=12, pred_heads=4,
                              prompt_dim=256)

PRESETS = {
    # Table 11: codec ~27M generator; prior 72M + 34M + 50M; prompt encoder 69M; diffusion 183M
    "paper": Preset(codec=CodecConfig(), model=NS2Config(), codec_train=CodecTrainConfig(),
                    ldm_train=LDMTrainConfig()),
    # one GPU: the paper's codec; prior 11.6M + 3.4M + 5.0M; batches of 6,000 frames
    "libritts": Preset(
        codec=CodecConfig(),
        model=NS2Config(prior=_LIBRITTS_PRIOR, denoiser=DenoiserConfig(channels=256, layers=20, cond_dim=256,
                                                                       prompt_dim=256),
                        **_prompt_as_encoder(_LIBRITTS_PRIOR)),
        codec_train=CodecTrainConfig(batch_size=32, steps=150_000, workers=4),
        ldm_train=LDMTrainConfig(frames_per_batch=6000, workers=4, warmup_steps=8000, steps=200_000),
        aligner=AlignerConfig(dim=192, steps=8000, share_stress=True, anchor_utts=1024)),
    # a 2-core CPU, minutes to hours: the shipped checkpoints
    "toy": Preset(
        codec=CodecConfig(channels=16, dim=64, dilations=(1, 3), disc_channels=8),
        # Departure from the paper: sampling temperature τ = 5 (§4.3: 1.2²), chosen on the toy test split's voices
        # and confirmed on the confirm split's: lower PER, more voiced vowels, less diversity (docs/quality.md)
        model=NS2Config(prior=_TOY_PRIOR, denoiser=DenoiserConfig(latent_dim=64, channels=96, layers=12, cond_dim=64,
                                                                  prompt_dim=64, m=16, heads=4, dropout=0.1),
                        sde=SDEConfig(temperature=5.0), **_prompt_as_encoder(_TOY_PRIOR)),
        codec_train=CodecTrainConfig(batch_size=8, lr=1e-3, steps=7_000, warmup_steps=500, adv_start=5_000,
                                     val_every=1000, ckpt_every=250),
        ldm_train=LDMTrainConfig(batch_size=16, lr=1e-3, warmup_steps=500, steps=5000, val_every=500, ckpt_every=250)),
    # tests: seconds
    "tiny": Preset(
        codec=CodecConfig(channels=4, dim=16, n_q=4, codebook_size=32, dilations=(1,), disc_channels=4, periods=(2, 3),
                          stft_ffts=(256,), mel_ffts=(256, 512)),
        model=NS2Config(prior=_TINY_PRIOR, denoiser=DenoiserConfig(latent_dim=16, channels=16, layers=3, cond_dim=16,
                                                                   prompt_dim=16, m=4, heads=2, dropout=0.0),
                        **_prompt_as_encoder(_TINY_PRIOR)),
        codec_train=CodecTrainConfig(batch_size=2, segment=0.5, lr=1e-3, steps=4, warmup_steps=1, adv_start=2,
                                     log_every=1, val_every=4, ckpt_every=2, val_utts=2),
        ldm_train=LDMTrainConfig(batch_size=2, lr=1e-3, warmup_steps=1, steps=4, log_every=1, val_every=4,
                                 ckpt_every=2, sample_steps=2),
        aligner=AlignerConfig(dim=16, n_mels=20, n_fft=256, text_layers=1, mel_layers=1, batch_size=2, steps=20)),
}


def preset(name: str) -> Preset:
    """A copy of the preset of this name (changing it leaves the table as it is), or a one-line ValueError naming
    the choices."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(sorted(PRESETS))}")
    return copy.deepcopy(PRESETS[name])


def model_config(name: str, n_phonemes: int = 100, latent_dim: int | None = None) -> NS2Config:
    """The preset's NS2Config for a phoneme inventory of `n_phonemes` (incl. <pad>) and a codec of latent dimension
    `latent_dim` (default: the preset's)."""
    cfg = preset(name).model
    return replace(cfg, prior=replace(cfg.prior, n_phonemes=n_phonemes),
                   denoiser=replace(cfg.denoiser, latent_dim=latent_dim or cfg.denoiser.latent_dim))


# ---------------------------------------------------------------------------------------------------------------
# Typed overrides
# ---------------------------------------------------------------------------------------------------------------
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def _to_int(key: str, raw: str, text: str) -> int:
    try:
        return int(text.replace("_", ""))
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if math.isfinite(number) and number.is_integer():
        return int(number)
    raise ValueError(f"--{key}={raw}: expected an integer")


def _to_float(key: str, raw: str, text: str) -> float:
    try:
        number = float(text.replace("_", ""))
    except ValueError:
        raise ValueError(f"--{key}={raw}: expected a number") from None
    if not math.isfinite(number):
        raise ValueError(f"--{key}={raw}: expected a finite number")
    return number


def convert_override(key: str, raw: str, declared: type, default):
    """The text of `--key=raw` -> a value of the field's declared type, or a one-line ValueError.

    bool: true/false, 1/0, yes/no, on/off in any case (never Python truthiness: "false" is False); int: an integer,
    also written 2e4 or 20_000; float: a finite number; tuple: comma-separated, brackets optional, each item of the
    type of the default's items; str: the text itself.
    """
    text = raw.strip()
    if declared is bool:
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise ValueError(f"--{key}={raw}: expected a boolean (true/false, 1/0, yes/no)")
    if declared is int:
        return _to_int(key, raw, text)
    if declared is float:
        return _to_float(key, raw, text)
    if declared is tuple:
        items = [x.strip() for x in text.strip("()[] ").split(",") if x.strip()]
        if not items:
            raise ValueError(f"--{key}={raw}: expected comma-separated values, e.g. --{key}=" +
                             ",".join(str(v) for v in default))
        item_type = type(default[0]) if default else str
        return tuple(convert_override(key, x, item_type, None) for x in items)
    if declared is str:
        return text
    raise ValueError(f"--{key}: a field of type {getattr(declared, '__name__', declared)} cannot be set here")


def _field_owner(cfg, key: str):
    """(the (nested) config that holds `key`, its leaf name), or (None, leaf) when `cfg` has no such field."""
    sub, _, leaf = key.rpartition(".")                  # "denoiser.use_prompt" -> a nested config
    target = getattr(cfg, sub) if sub and hasattr(cfg, sub) else (cfg if not sub else None)
    if target is not None and leaf in {f.name for f in fields(target)}:
        return target, leaf
    return None, leaf


def set_field(cfg, key: str, value):
    """A copy of `cfg` with the (possibly nested, dotted) field `key` set to `value`, already of its type."""
    sub, _, leaf = key.rpartition(".")
    return replace(cfg, **{sub: replace(getattr(cfg, sub), **{leaf: value})}) if sub else replace(cfg, **{leaf: value})


def typed_overrides(pairs: list[str], *configs) -> list[dict]:
    """`--key=value` pairs -> one {key: typed value} per config, each pair going to the first config with a field
    `key`: parsed once, applied later (`apply_overrides`), possibly to another config of the same type."""
    out = [{} for _ in configs]
    for pair in pairs:
        if not pair.startswith("--") or "=" not in pair:
            raise ValueError(f"unrecognised argument {pair!r} (overrides are written --key=value)")
        key, raw = pair[2:].split("=", 1)
        key = key.replace("-", "_")
        for i, cfg in enumerate(configs):
            target, leaf = _field_owner(cfg, key)
            if target is None:
                continue
            declared = typing.get_type_hints(type(target))[leaf]
            if is_dataclass(declared):
                names = ", ".join(f"--{key}.{f.name}" for f in fields(declared)[:3])
                raise ValueError(f"--{key} is a group of settings: set its fields, e.g. {names}")
            out[i][key] = convert_override(key, raw, declared, getattr(target, leaf))
            break
        else:
            close = difflib.get_close_matches(key, field_names(configs), n=1)
            raise ValueError(f"no config field named {key!r}" + (f" (did you mean --{close[0]}?)" if close else ""))
    return out


def apply_overrides(cfg, values: dict):
    """`cfg` with the typed values of `typed_overrides` set."""
    for key, value in values.items():
        cfg = set_field(cfg, key, value)
    return cfg


def parse_overrides(pairs: list[str], *configs) -> list:
    """minGPT-style `--key=value` overrides applied to the first config that has a field `key` (nested fields with
    a dot: --prior.pitch_bins=256), each value converted to the field's declared type (`convert_override`)."""
    return [apply_overrides(cfg, values) for cfg, values in zip(configs, typed_overrides(pairs, *configs))]


def field_names(configs) -> list[str]:
    """Every settable key of these configs: 'lr', 'prior.pitch_bins', ..."""
    names = []
    for cfg in configs:
        for f in fields(cfg):
            value = getattr(cfg, f.name)
            names += [f"{f.name}.{g.name}" for g in fields(value)] if is_dataclass(value) else [f.name]
    return names


def plain_config(cfg) -> dict:
    """Dataclass -> dict of JSON/weights_only-safe values (tuples become lists, nested configs become dicts)."""
    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return list(v) if isinstance(v, tuple) else v
    return {k: plain(v) for k, v in asdict(cfg).items()}
