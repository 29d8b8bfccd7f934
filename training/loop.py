"""What every training stage shares (paper §4.3): typed `--key=value` config overrides, atomic checkpoints, exact
resume (RNG states of every rank), mixed precision, the optimizer step, and DistributedDataParallel set-up for
`torchrun`. `train.py` (the command line and the codec stage) and `training/ldm_stage.py` (the diffusion stage) import it;
it imports neither.

Multi-GPU: `torchrun --nproc_per_node=N train.py ...` sets RANK/WORLD_SIZE/LOCAL_RANK; `distributed()` joins the
process group (NCCL on GPUs, gloo on CPUs), each rank takes its own slice of every global batch, DDP averages the
gradients, and rank 0 alone writes checkpoints, logs and validation samples.
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import asdict, dataclass, fields, is_dataclass, replace
from pathlib import Path

import torch


_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


class NonFiniteLoss(FloatingPointError):
    """A NaN/inf loss: training stops before anything is written (`train.py` reports it as a one-line error)."""


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
    if declared is float:
        try:
            number = float(text.replace("_", ""))
        except ValueError:
            raise ValueError(f"--{key}={raw}: expected a number") from None
        if not math.isfinite(number):
            raise ValueError(f"--{key}={raw}: expected a finite number")
        return number
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


def parse_overrides(pairs: list[str], *configs):
    """minGPT-style `--key=value` overrides applied to the first config that has a field `key` (nested fields with
    a dot: --prior.pitch_bins=256), each value converted to the field's declared type (`convert_override`).
    A wrong type, an unknown key or a group of settings given a value is a one-line ValueError."""
    import difflib
    import typing
    out = list(configs)
    for pair in pairs:
        if not pair.startswith("--") or "=" not in pair:
            raise ValueError(f"unrecognised argument {pair!r} (overrides are written --key=value)")
        key, raw = pair[2:].split("=", 1)
        key = key.replace("-", "_")
        for i, cfg in enumerate(out):
            sub, _, leaf = key.rpartition(".")                  # "denoiser.use_prompt" -> a nested config
            target = getattr(cfg, sub) if sub and hasattr(cfg, sub) else (cfg if not sub else None)
            if target is not None and leaf in {f.name for f in fields(target)}:
                declared = typing.get_type_hints(type(target))[leaf]
                if is_dataclass(declared):
                    names = ", ".join(f"--{key}.{f.name}" for f in fields(declared)[:3])
                    raise ValueError(f"--{key} is a group of settings: set its fields, e.g. {names}")
                value = convert_override(key, raw, declared, getattr(target, leaf))
                target = replace(target, **{leaf: value})
                out[i] = replace(cfg, **{sub: target}) if sub else target
                break
        else:
            known = field_names(out)
            close = difflib.get_close_matches(key, known, n=1)
            raise ValueError(f"no config field named {key!r}" + (f" (did you mean --{close[0]}?)" if close else ""))
    return out


def field_names(configs) -> list[str]:
    """Every settable key of these configs: 'lr', 'prior.pitch_bins', ..."""
    names = []
    for cfg in configs:
        for f in fields(cfg):
            value = getattr(cfg, f.name)
            names += [f"{f.name}.{g.name}" for g in fields(value)] if is_dataclass(value) else [f.name]
    return names


def save_checkpoint(path: Path, obj: dict):
    """torch.save through a temp file + rename: a crash mid-write never leaves a broken checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def plain_config(cfg) -> dict:
    """Dataclass -> dict of JSON/weights_only-safe values (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


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


def rng_state(device: torch.device) -> dict:
    """The CPU (and CUDA) RNG states a checkpoint stores for an exact resume."""
    return dict(torch=torch.get_rng_state(), cuda=torch.cuda.get_rng_state() if device.type == "cuda" else None)


def restore_shared(ck: dict, scaler, device: torch.device, rank: int = 0) -> tuple[int, list]:
    """The parts of a resume both stages share: grad scaler, CPU and CUDA RNG (this rank's, when the checkpoint
    holds every rank's: `all_rng_states`); returns (step, history)."""
    if scaler is not None and ck.get("scaler"):
        scaler.load_state_dict(ck["scaler"])
    rng = ck["rng"][rank % len(ck["rng"])] if isinstance(ck["rng"], list) else ck["rng"]
    torch.set_rng_state(rng["torch"])
    if device.type == "cuda" and rng.get("cuda") is not None:
        torch.cuda.set_rng_state(rng["cuda"])
    return ck["step"], ck["history"]


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

