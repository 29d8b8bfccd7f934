"""The peer's training-step probe of `python -m evaluation.bench peer`: the lucidrains implementation of
NaturalSpeech 2 (PyPI `naturalspeech2-pytorch` 0.1.8), timed at the shape of bench.STEP_SHAPES["peer"] in its own
virtual environment, outside this project (never one of its dependencies), made once as `VENV_HOWTO` says.

bench runs this file with that environment's python, in this source tree (for `step_probe.padded_batch`, the batch
our model is timed on), and reads the one JSON line it prints:

    /tmp/peer/venv/bin/python evaluation/peer_probe.py '{"batch": 4, "frames": 400, ...}'

The peer's package imports torchaudio, audiolm-pytorch (its codec), accelerate, ema-pytorch, tqdm, pyworld and a
text front end at import time; none of them is used by the parts timed here, so they are not installed (torchaudio
would have to match torch 2.13 exactly) and `stub_imports` puts empty stand-ins for them in sys.modules first.

What is timed: one AdamW step of the peer's prior (phoneme encoder, duration and pitch predictors with prompt
attention, pitch embedding), speech prompt encoder and denoiser (WaveNet + Transformer with a Perceiver resampler
over the prompt), built at `PEER_SIZES`, on ground-truth durations and pitch (its aligner is left out, as ours is
trained separately). The loss is the one its `NaturalSpeech2.forward` writes out: the v-prediction MSE with min-SNR
weights (sigmoid schedule) plus the L1 duration and pitch losses of its `aux_loss`. (Its forward computes `aux_loss`
and returns only the diffusion loss, so its predictors would get no gradient; the probe adds the two terms, so that
both models update every part they have.) It has no CE-RVQ term.
"""
import importlib.machinery
import json
import statistics
import sys
import types
import warnings

import torch

VENV_HOWTO = """The peer (PyPI naturalspeech2-pytorch 0.1.8, the lucidrains implementation) runs in a venv of its own,
outside this project, with only the pure-Python packages its timed parts need; make it once:

    python -m venv /tmp/peer/venv
    /tmp/peer/venv/bin/pip install torch==2.13.0 einops beartype packaging numpy    # the torch of requirements.txt
    /tmp/peer/venv/bin/pip install --no-deps naturalspeech2-pytorch==0.1.8

then: python -m evaluation.bench peer --peer-python /tmp/peer/venv/bin/python"""
# sizes of the peer's parts: every width 256 (the latent dimension of our "mid"/"peer" model), one encoder layer
# each for phonemes and prompt, predictor trunks of depth 2 (each 3 residual conv blocks + one prompt attention), a
# WaveNet of 1 stack x 4 layers and a 1-layer Transformer: 24.9M parameters (24.8M without the pitch embedding)
PEER_SIZES = dict(dim=256, phoneme_layers=1, prompt_layers=1, predictor_depth=2, wavenet_stacks=1, wavenet_layers=4,
                  transformer_depth=1, n_tokens=84, pitch_bins=256)
PEER_LOSS_TERMS = "diffusion (v-prediction MSE, min-SNR weights), duration L1, pitch L1"
STUBBED = ("torchaudio", "torchaudio.functional", "torchaudio.transforms", "audiolm_pytorch", "audiolm_pytorch.data",
           "accelerate", "ema_pytorch", "tqdm", "tqdm.auto", "pyworld", "naturalspeech2_pytorch.utils.tokenizer")


def stub_imports() -> None:
    """Empty modules for the peer's audio, codec, training and text imports (see the module docstring); the class
    names its signatures mention are empty classes, so that its beartype annotations resolve."""
    class Unused:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("stubbed by evaluation/peer_probe.py: not part of the timed step")
    names = dict(SoundStream=Unused, EncodecWrapper=Unused, SoundDataset=Unused, get_dataloader=Unused,
                 Accelerator=Unused, EMA=Unused, Tokenizer=type("Tokenizer", (Unused,), {}), ESpeak=Unused,
                 tqdm=lambda it, **kw: it)
    for name in STUBBED:
        if name in sys.modules:
            continue
        module = sys.modules[name] = types.ModuleType(name)
        module.__dict__.update(names)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)     # torch._dynamo looks modules up by spec


def peer_inputs(b: dict, prompt_frames: int, dim: int, generator=None) -> dict:
    """Our loss batch (step_probe.padded_batch) in the peer's form: phonemes with padding = −1 (its pad marker),
    durations as they are, pitch in Hz (exp of log-F0, zero past each utterance's end) (B, 1, T), a latent z_0
    (B, T, dim) zero on padded frames and a separate prompt latent (B, prompt_frames, dim), both N(0, 1)."""
    B, T = b["frame_mask"].shape
    fmask = b["frame_mask"]
    return dict(text=b["phonemes"].masked_fill(~b["phoneme_mask"], -1), durations=b["durations"],
                pitch=(b["lf0"].exp() * fmask)[:, None],
                latent=torch.randn(B, T, dim, generator=generator) * fmask[..., None],
                prompt=torch.randn(B, prompt_frames, dim, generator=generator))


class Peer(torch.nn.ModuleDict):
    """The peer's parts (`build`), with the `loss(batch)["total"]` that step_probe.training_step calls."""

    def loss(self, x: dict, generator=None) -> dict:
        return peer_losses(self, x, generator)


def build(sizes: dict) -> Peer:
    """The peer's prior, prompt encoder and denoiser at `sizes` (`PEER_SIZES`)."""
    import naturalspeech2_pytorch.naturalspeech2_pytorch as ns2
    d = sizes["dim"]
    return Peer(dict(
        phoneme_enc=ns2.PhonemeEncoder(num_tokens=sizes["n_tokens"], dim=d, dim_hidden=d, depth=sizes["phoneme_layers"]),
        prompt_enc=ns2.SpeechPromptEncoder(dim_codebook=d, dims=(d,), depth=sizes["prompt_layers"]),
        duration_pitch=ns2.DurationPitchPredictor(dim=d, dim_hidden=d, dim_encoded_prompts=d,
                                                  depth=sizes["predictor_depth"]),
        pitch_emb=torch.nn.Embedding(sizes["pitch_bins"], d),
        model=ns2.Model(dim=d, depth=sizes["transformer_depth"], wavenet_stacks=sizes["wavenet_stacks"],
                        wavenet_layers=sizes["wavenet_layers"], dim_prompt=d, condition_on_prompt=True)))


def peer_losses(parts: torch.nn.ModuleDict, x: dict, generator=None) -> dict:
    """The peer's training losses on ground-truth durations and pitch, as its NaturalSpeech2.forward computes them
    (module docstring): {"diffusion", "dur", "pitch", "total"}."""
    import torch.nn.functional as F
    import naturalspeech2_pytorch.naturalspeech2_pytorch as ns2
    from naturalspeech2_pytorch.utils.utils import average_over_durations
    prompt_enc = parts["prompt_enc"](x["prompt"])                              # (B, Tp, d)
    phoneme_enc = parts["phoneme_enc"](x["text"])                             # (B, N, d)
    duration_pred, pitch_pred = parts["duration_pitch"](phoneme_enc, prompt_enc)
    pitch = average_over_durations(x["pitch"], x["durations"])                # (B, 1, N)
    aln = ns2.generate_mask_from_repeats(x["durations"]).float()              # (B, N, T)
    # NaturalSpeech2.expand_encodings: phoneme hiddens and the pitch embedding spread over each phoneme's frames
    pitch_emb = parts["pitch_emb"](ns2.f0_to_coarse(pitch)[:, 0]).transpose(1, 2)   # (B, d, N)
    cond = torch.einsum("bnt,bdn->bdt", aln, phoneme_enc.transpose(1, 2) + pitch_emb)
    audio = x["latent"]
    times = torch.rand(len(audio), generator=generator)
    noise = torch.randn(audio.shape, generator=generator)
    gamma = ns2.right_pad_dims_to(audio, ns2.sigmoid_schedule(times))
    alpha, sigma = ns2.gamma_to_alpha_sigma(gamma)
    pred = parts["model"](alpha * audio + sigma * noise, times, prompt=prompt_enc, cond=cond)
    loss = F.mse_loss(pred, alpha * noise - sigma * audio, reduction="none").mean((1, 2))
    snr = alpha * alpha / (sigma * sigma)
    losses = dict(diffusion=(loss * (snr.clamp(max=5.0) / (snr + 1)).flatten()).mean(),
                  dur=F.l1_loss(x["durations"].float(), duration_pred), pitch=F.l1_loss(pitch[:, 0], pitch_pred))
    losses["total"] = losses["diffusion"] + losses["dur"] + losses["pitch"]
    return losses


def peer_trees(peer_python: str, here) -> tuple[dict, str]:
    """The entries of `python -m evaluation.bench peer` (see bench.bench_step) and the peer's name: this tree (`here`),
    then the peer run by `peer_python`, each in fp32 and under bf16 autocast. A ValueError that says how to make the
    peer's venv if that python is missing or lacks the package."""
    import subprocess
    from pathlib import Path
    py = Path(peer_python)
    found = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('naturalspeech2-pytorch'))"],
                           capture_output=True, text=True) if py.exists() else None
    if found is None or found.returncode:
        raise ValueError(f"no naturalspeech2-pytorch for {py}: make its venv first (python -m evaluation.bench peer --help)")
    name = f"naturalspeech2-pytorch {found.stdout.strip()}"
    return {**{("this tree", amp): (here, amp) for amp in ("none", "bf16")},
            **{(name, amp): (here, amp, str(py)) for amp in ("none", "bf16")}}, name


def main(a: dict) -> dict:
    torch.set_num_threads(a["threads"])
    stub_imports()
    warnings.filterwarnings("ignore", category=FutureWarning)          # its torch.backends.cuda.sdp_kernel
    from evaluation.step_probe import padded_batch, time_steps, training_step
    torch.manual_seed(0)
    parts = build(PEER_SIZES)
    frames = a.get("peer_frames", a["frames"])
    x = peer_inputs(padded_batch(a["batch"], frames, a["phonemes"]), a["prompt_frames"], PEER_SIZES["dim"],
                    torch.Generator().manual_seed(2))
    amp = torch.autocast("cpu", dtype=torch.bfloat16, enabled=a["amp"] == "bf16")
    per_tensor = lambda m: torch.optim.AdamW(m.parameters(), 1e-4)      # as its trainer's Adam: no fused kernel
    times = time_steps(training_step(parts, x, amp, per_tensor), a["warmup"], a["repeats"])
    return dict(step=statistics.median(times), params_m=sum(p.numel() for p in parts.parameters()) / 1e6,
                terms=PEER_LOSS_TERMS)


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
