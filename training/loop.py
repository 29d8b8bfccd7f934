"""The one training loop (paper §4.3) that both stages plug into: `codec_stage` (§3.1) and `ldm_stage` (§3.2-3.3)
each build a `Stage` (its modules and optimizers, one step's losses, its validation, its learning rate), and `run`
does the rest: the learning rate of every step, the optimizer step's precision (`amp_context`), an EMA of the
weights, the NaN guard, logging (`log.jsonl` and TensorBoard), validation and checkpoint timing, atomic checkpoints
with every rank's RNG state, and an exact resume (same step, weights, optimizers, grad scaler, RNG; batches are a
pure function of the step).

Multi-GPU: `torchrun --nproc_per_node=N train.py ...` sets RANK/WORLD_SIZE/LOCAL_RANK; `distributed()` joins the
process group (NCCL on GPUs, gloo on CPUs), each rank takes its own slice of every global batch, DDP averages the
gradients, and rank 0 alone writes checkpoints, logs and validation samples.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from corpus.features import atomic_write
from training.presets import plain_config


class NonFiniteLoss(FloatingPointError):
    """A NaN/inf loss: training stops before anything is written (`train.py` reports it as a one-line error)."""


def check_finite(loss: torch.Tensor, what: str, step: int, losses: dict | None = None, last: Path | None = None):
    """Raise NonFiniteLoss (naming the step and every term) unless `loss` is finite."""
    if torch.isfinite(loss):
        return
    terms = f" ({ {k: float(v.detach()) for k, v in losses.items()} })" if losses else ""
    hint = f": lower --lr or resume from {last}" if last else ""
    raise NonFiniteLoss(f"non-finite {what} at step {step}{terms}; nothing was saved{hint}")


def save_checkpoint(path: Path, obj: dict):
    """torch.save through a temp file + rename: a crash mid-write never leaves a broken checkpoint."""
    atomic_write(Path(path), lambda f: torch.save(obj, f))


def cpu_has_native_bf16() -> bool:
    """True on a CPU with bf16 instructions (AVX512-BF16 or AMX), where oneDNN's bf16 matrix products and
    convolutions run 2-3x faster than fp32; elsewhere bf16 is emulated and slower. Linux only (/proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def amp_context(device: torch.device, amp: str, cpu_bf16: bool = False):
    """(autocast context, grad scaler or None) for `amp`: auto = bf16 on a GPU; on a CPU, bf16 when `cpu_bf16` and
    the CPU has native bf16 (`cpu_has_native_bf16`), else none (fp32); fp16 adds a scaler."""
    if amp == "auto":
        amp = "bf16" if device.type == "cuda" or (cpu_bf16 and cpu_has_native_bf16()) else "none"
    if amp == "none":
        return torch.autocast(device.type, enabled=False), None
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None
    return torch.autocast(device.type, dtype=dtype), scaler


def optimizer_step(loss, opt, params, scaler, clip: float) -> torch.Tensor:
    """Backward, (unscale,) clip the gradient norm, step; returns the norm before clipping."""
    opt.zero_grad(set_to_none=True)
    (scaler.scale(loss) if scaler else loss).backward()
    if scaler:
        scaler.unscale_(opt)
    norm = torch.nn.utils.clip_grad_norm_(params, clip)
    scaler.step(opt) if scaler else opt.step()
    return norm


# ---------------------------------------------------------------------------------------------------------------
# Distributed data parallel (torchrun)
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def distributed(device: str = "cpu") -> Dist:
    """This process's place in a `torchrun` job (or a single process): joins the process group when WORLD_SIZE > 1;
    on CUDA each rank takes the GPU of its LOCAL_RANK."""
    import torch.distributed as dist
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = torch.device(device)
    if world == 1:
        return Dist(0, 1, dev)
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), dev)


def wrap(module: torch.nn.Module, d: Dist) -> torch.nn.Module:
    """DistributedDataParallel around `module` when there are several ranks (gradients averaged over ranks in
    backward; buffers broadcast from rank 0), else the module itself. Parameters a step may leave unused (the
    classifier-free null prompt, a frozen part) are allowed."""
    if d.world == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(module, device_ids=[d.device.index] if d.device.type == "cuda" else None,
                                   find_unused_parameters=True)


def rng_state(device: torch.device) -> dict:
    """The CPU (and CUDA) RNG states a checkpoint stores for an exact resume."""
    return dict(torch=torch.get_rng_state(), cuda=torch.cuda.get_rng_state() if device.type == "cuda" else None)


def all_rng_states(d: Dist) -> list:
    """The RNG states of every rank (rank order), for a checkpoint that rank 0 writes."""
    mine = rng_state(d.device)
    if d.world == 1:
        return [mine]
    import torch.distributed as dist
    out = [None] * d.world
    dist.all_gather_object(out, mine)
    return out


def barrier(d: Dist):
    if d.world > 1:
        import torch.distributed as dist
        dist.barrier()


def check_in_sync(modules, d: Dist):
    """Raise if any rank's weights differ from rank 0's (DDP keeps them equal; a difference means a bug, e.g. a
    rank-local update). Cheap enough to run at every checkpoint."""
    if d.world == 1:
        return
    import torch.distributed as dist
    flat = torch.cat([p.detach().float().reshape(-1) for m in modules for p in m.state_dict().values()
                      if p.is_floating_point()])
    ref = flat.clone()
    dist.broadcast(ref, 0)
    gap = torch.tensor([(flat - ref).abs().max().item()], device=flat.device)
    dist.all_reduce(gap, op=dist.ReduceOp.MAX)
    if gap.item() > 1e-5:
        raise RuntimeError(f"the ranks' weights have drifted apart (max difference {gap.item():.2e})")


# ---------------------------------------------------------------------------------------------------------------
# What a stage plugs in, and the loop
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Validation:
    """What a stage's validation returns: metrics (logged, kept in the checkpoint's history) and audio clips
    {name: mono float waveform}, written to <out>/samples/step<N>_<name>.wav and to TensorBoard."""
    metrics: dict
    audio: dict = field(default_factory=dict)
    sample_rate: int = 16000


@dataclass
class Stage:
    """One training stage, as `run` drives it."""
    kind: str                                   # "codec" | "ldm": the checkpoint's kind
    config: dict                                # the model config as saved; a resume must match it
    modules: dict                               # {checkpoint key: nn.Module}, "model" first
    optimizers: dict                            # {checkpoint key: optimizer}; each step sets their lr
    train_step: Callable[[int], dict]           # step -> its losses (tensors); does the backward and optimizer steps
    validate: Callable[[int], Validation]       # step -> held-out metrics and audio (rank 0 only)
    lr_at: Callable[[int], float]               # step -> learning rate
    meta: dict = field(default_factory=dict)    # more checkpoint fields (phonemes, codec, where the weights began)
    ema: dict | None = None                     # an EMA of modules["model"]'s state (checkpoint key "ema"), or None
    ema_decay: float = 0.999
    shown: tuple = ()                           # losses on the progress bar (default: every one but grad_norm)
    train_mode: Callable[[], None] | None = None  # put the modules in training mode (default: .train() on each)


class RunLog:
    """A run's log: one JSON line per record in <out>/log.jsonl, and the same scalars (and validation audio) in
    TensorBoard event files in <out>/tb (`tensorboard --logdir <out>/tb`). Rank 0 writes; other ranks write nothing."""

    def __init__(self, out: Path, main: bool):
        self.jsonl = open(out / "log.jsonl", "a") if main else None
        self.tb = None
        if main:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(out / "tb"))
            except ImportError:                 # tensorboard is in requirements.txt; a bare install still trains
                print("note: tensorboard is not installed; logging to log.jsonl only", file=sys.stderr)

    def write(self, row: dict):
        if self.jsonl:
            self.jsonl.write(json.dumps(row) + "\n")
            self.jsonl.flush()

    def scalars(self, prefix: str, values: dict, step: int):
        if self.tb:
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{prefix}/{k}", v, step)

    def audio(self, v: Validation, step: int, folder: Path):
        if not v.audio or self.jsonl is None:
            return
        import soundfile as sf
        folder.mkdir(parents=True, exist_ok=True)
        for name, wav in v.audio.items():
            wav = np.asarray(wav, dtype=np.float32)
            sf.write(folder / f"step{step:07d}_{name}.wav", wav, v.sample_rate)
            if self.tb:
                self.tb.add_audio(f"samples/{name}", torch.from_numpy(wav).clamp(-1, 1)[None], step, v.sample_rate)

    def close(self):
        if self.jsonl:
            self.jsonl.close()
        if self.tb:
            self.tb.close()


def _checkpoint(stage: Stage, path: Path, step: int, history: list, scaler, d: Dist, train_config: dict):
    """Every rank takes part (RNG states gathered, weights checked equal); rank 0 writes."""
    check_in_sync(list(stage.modules.values()), d)
    rng = all_rng_states(d)
    if not d.main:
        return
    state = {k: m.state_dict() for k, m in stage.modules.items()}
    state |= {k: o.state_dict() for k, o in stage.optimizers.items()}
    if stage.ema is not None:
        state["ema"] = stage.ema
    save_checkpoint(path, dict(kind=stage.kind, version=1, config=stage.config, train_config=train_config, step=step,
                               history=history, scaler=scaler.state_dict() if scaler else None, rng=rng,
                               world=d.world, **stage.meta, **state))


def _resume(stage: Stage, path: Path, scaler, d: Dist):
    """Load a checkpoint of this stage into it -> (step, history). Fields a stage records about where its
    weights started (`*_of`) are kept from the checkpoint unless the stage sets them itself."""
    ck = torch.load(path, map_location=d.device, weights_only=True)
    if ck.get("kind") != stage.kind:
        raise ValueError(f"{path} is not a {stage.kind} training checkpoint")
    if ck["config"] != stage.config:
        raise ValueError(f"{path} was trained with another model config; resume with the same --config and options")
    for k, obj in (stage.modules | stage.optimizers).items():
        obj.load_state_dict(ck[k])
    if stage.ema is not None:
        for k, v in ck["ema"].items():
            stage.ema[k].copy_(v)
    stage.meta = {k: v for k, v in ck.items() if k.endswith("_of")} | stage.meta
    if scaler is not None and ck.get("scaler"):
        scaler.load_state_dict(ck["scaler"])
    rng = ck["rng"][d.rank % len(ck["rng"])] if isinstance(ck["rng"], list) else ck["rng"]
    torch.set_rng_state(rng["torch"])
    if d.device.type == "cuda" and rng.get("cuda") is not None:
        torch.cuda.set_rng_state(rng["cuda"])
    return ck["step"], ck["history"]


def _progress_bar(stage: Stage, tcfg, step: int, show: bool):
    from tqdm import tqdm
    return tqdm(total=tcfg.steps, initial=step, desc=stage.kind, unit="step", disable=not show, dynamic_ncols=True,
                mininterval=0.5 if sys.stderr.isatty() else 30)       # one line per 30 s in a log file


def run(stage: Stage, tcfg, out: Path, d: Dist, scaler=None, resume: bool = False, progress: bool = True) -> dict:
    """Train `stage` to tcfg.steps (resuming exactly from <out>/last.pt when `resume`); returns the last validation
    metrics. `tcfg` is the stage's training config: steps, log_every, val_every, ckpt_every (and the rest the stage
    reads itself)."""
    out, last = Path(out), Path(out) / "last.pt"
    step, history = _resume(stage, last, scaler, d) if resume else (0, [])
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
    log, train_config = RunLog(out, d.main), plain_config(tcfg)
    (stage.train_mode or (lambda: [m.train() for m in stage.modules.values()]))()
    bar = _progress_bar(stage, tcfg, step, progress and d.main)
    while step < tcfg.steps:
        lr = stage.lr_at(step)
        for opt in stage.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr
        losses = stage.train_step(step)
        if scaler:
            scaler.update()
        if stage.ema is not None:
            _update_ema(stage.ema, stage.modules["model"], stage.ema_decay)
        step += 1
        bar.update(1)
        due = lambda every: step % every == 0 or step == tcfg.steps
        if due(tcfg.log_every):
            row = {k: round(float(v.detach()), 5) for k, v in losses.items()}
            bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k in stage.shown or
                             (not stage.shown and k != "grad_norm")})
            log.write(dict(step=step, lr=lr, **row))
            log.scalars("train", dict(row, lr=lr), step)
        if due(tcfg.val_every) and d.main:
            v = stage.validate(step)
            history.append(dict(step=step, **v.metrics))
            log.write(dict(step=step, val=v.metrics))
            log.scalars("valid", v.metrics, step)
            log.audio(v, step, out / "samples")
            if progress:
                bar.write(f"step {step}: " + "  ".join(f"{k} {x:.3f}" for k, x in v.metrics.items()
                                                       if isinstance(x, float)))
        if due(tcfg.ckpt_every):
            _checkpoint(stage, last, step, history, scaler, d, train_config)
    bar.close()
    log.close()
    barrier(d)
    return history[-1] if history else {}


@torch.no_grad()
def _update_ema(ema: dict, model: torch.nn.Module, decay: float):
    """ema ← decay · ema + (1 − decay) · weights (integer buffers are copied)."""
    for k, v in model.state_dict().items():
        ema[k].lerp_(v, 1 - decay) if v.is_floating_point() else ema[k].copy_(v)
