"""Residual vector quantization (paper §3.1, Eq. 1) and the CE-RVQ loss (§3.2).

NaturalSpeech 2's codec turns the encoder output `h` into a *continuous* latent `z` that is nevertheless a sum of
codebook vectors:

    Eq. (1):  r_1 = h;   for j = 1..R:  i_j = argmin_k ||r_j − C_j[k]||²,  e_j = C_j[i_j],  r_{j+1} = r_j − e_j
              z = Σ_j e_j

Why quantize if the diffusion model generates continuous vectors? (1) The diffusion training set stores only the
token IDs `i_j` (R small integers per frame) plus the codebooks, and rebuilds `z` with Eq. 1 (`decode`).
(2) The IDs give the diffusion model an extra classification loss, CE-RVQ (`ce_rvq_loss`), which lives here next
to the codebooks it reads.

Codebooks are learned by exponential moving averages (EMA, as in VQ-VAE-2 / SoundStream), initialised by k-means
on the first batch, and codes that fall out of use are restarted from the batch. Quantizer dropout (SoundStream)
trains with a random number of quantizers so that any prefix 1..R gives a usable (lower-bitrate) latent.
Shapes: sequences are channels first, `h, z: (B, D, T)`, `ids: (B, R, T)`.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def nearest_code(r: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """i = argmin_k ||r − C[k]||² for each row of r (N, D) over codebook C (V, D) -> (N,) long.

    ||r − C_k||² = ||r||² − 2 r·C_k + ||C_k||²; ||r||² is the same for every k, so one matrix product suffices.
    """
    # BEGIN SOLUTION 1
    # Provides: return i (N,) long, the index of the code of C nearest to each row of r.
    return (2 * r @ codebook.T - (codebook ** 2).sum(1)).argmax(1)
    # END SOLUTION


def kmeans(x: torch.Tensor, k: int, iters: int = 10, generator=None) -> torch.Tensor:
    """k-means centroids (k, D) of rows x (N, D); with N < k, centroids start from rows drawn with replacement."""
    idx = torch.randint(len(x), (k,), generator=generator, device=x.device) if len(x) < k else \
        torch.randperm(len(x), generator=generator, device=x.device)[:k]
    centroids = x[idx].clone()
    for _ in range(iters):
        assign = nearest_code(x, centroids)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centroids)
    return centroids


def _ranks() -> int:
    """Number of processes training together (torch.distributed, e.g. under torchrun), 1 otherwise."""
    import torch.distributed as dist
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _sum_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """t summed over every rank, in place (a no-op in a single process)."""
    if _ranks() > 1:
        import torch.distributed as dist
        dist.all_reduce(t)
    return t


def _rows_of_all_ranks(r: torch.Tensor) -> torch.Tensor:
    """The rows (N, D) of every rank, concatenated in rank order (r itself in a single process)."""
    if _ranks() == 1:
        return r
    import torch.distributed as dist
    n = torch.tensor([len(r)], device=r.device)
    sizes = [torch.zeros_like(n) for _ in range(_ranks())]
    dist.all_gather(sizes, n)
    longest = int(max(sizes))
    padded = torch.cat([r, r.new_zeros(longest - len(r), r.shape[1])])
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([p[:int(k)] for p, k in zip(parts, sizes)])


class ResidualVQ(nn.Module):
    """R codebooks of V codes of dimension D, learned by EMA (no gradient reaches them).

    Under data-parallel training (several processes) the codebook statistics are summed over the processes and the
    k-means initialisation and dead-code restarts draw from the rows of all of them, so every process keeps the same
    codebooks and N processes with batch B learn exactly what one process with batch N·B would."""

    def __init__(self, n_q: int = 16, codebook_size: int = 1024, dim: int = 256, decay: float = 0.99,
                 dead_ratio: float = 0.1, quantizer_dropout: float = 1.0, eps: float = 1e-5):
        super().__init__()
        self.n_q, self.codebook_size, self.dim = n_q, codebook_size, dim
        self.decay, self.dead_ratio, self.quantizer_dropout, self.eps = decay, dead_ratio, quantizer_dropout, eps
        self.register_buffer("codebooks", torch.randn(n_q, codebook_size, dim))     # C_j: (R, V, D)
        self.register_buffer("cluster_size", torch.zeros(n_q, codebook_size))       # EMA of code counts
        self.register_buffer("embed_sum", torch.zeros(n_q, codebook_size, dim))     # EMA of assigned vector sums
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    # -- Eq. 1 ----------------------------------------------------------------------------------------------------
    def forward(self, h: torch.Tensor, n_q: int | None = None, mask: torch.Tensor | None = None):
        """Quantize h (B, D, T) with Eq. 1 -> (z_st (B, D, T), ids (B, n_q, T), commitment loss).

        z_st = h + sg(z − h) is the straight-through estimator: its value is z = Σ_j e_j, its gradient goes to h
        unchanged. commitment = mean over stages j of ||r_j − sg(e_j)||² (each stage pulls its residual towards
        its code, so each stage sends gradient to the encoder). In training mode the codebooks are updated by EMA
        (`mask` (B, T), True on real frames, keeps padding out of the statistics) and, with probability
        `quantizer_dropout`, only a random prefix of 1..R quantizers is used (SoundStream).
        """
        B, D, T = h.shape
        if D != self.dim:
            raise ValueError(f"latent dimension {D} does not match the codebooks' {self.dim}")
        if n_q is None:
            n_q = self.n_q
            if self.training and torch.rand(()) < self.quantizer_dropout:
                n_q = int(torch.randint(1, self.n_q + 1, ()))
        r = h.transpose(1, 2).reshape(-1, D)                                   # (B*T, D)
        keep = None if mask is None else mask.reshape(-1)
        if self.training and not bool(self.initialized):
            self._init_kmeans(r.detach() if keep is None else r.detach()[keep])
        z = torch.zeros_like(r)
        ids, commit = [], r.new_zeros(())
        for j in range(n_q):
            i_j = nearest_code(r.detach(), self.codebooks[j])                  # (B*T,)
            e_j = self.codebooks[j][i_j]                                        # (B*T, D), a buffer: no grad
            if self.training:
                self._ema_update(j, r.detach(), i_j, keep)
            diff = (r - e_j) ** 2
            commit = commit + (diff.mean() if keep is None else diff[keep].mean())
            # BEGIN SOLUTION 1
            # Provides: z ← z + e_j (z sums the codes; read after the loop) and r ← r − e_j, the residual
            #   that the next stage quantizes.
            z = z + e_j
            r = r - e_j                                                         # r_{j+1} = r_j − e_j
            # END SOLUTION
            ids.append(i_j)
        z = z.reshape(B, T, D).transpose(1, 2)                                  # (B, D, T)
        ids = torch.stack(ids, 1).reshape(B, T, n_q).transpose(1, 2)            # (B, n_q, T)
        z_st = h + (z - h).detach()
        return z_st, ids, commit / n_q

    @torch.no_grad()
    def encode(self, h: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """h (B, D, T) -> ids (B, n_q, T) by Eq. 1 (no codebook update)."""
        training, self.training = self.training, False
        try:
            return self.forward(h, n_q or self.n_q)[1]
        finally:
            self.training = training

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, n, T) with n ≤ R -> z = Σ_j C_j[i_j] (B, D, T): Eq. 1's sum, rebuilt from stored IDs."""
        n = ids.shape[1]
        if n > self.n_q or ids.min() < 0 or ids.max() >= self.codebook_size:
            raise ValueError(f"ids must be (B, ≤{self.n_q}, T) in [0, {self.codebook_size})")
        B, _, T = ids.shape
        flat = ids + self.codebook_size * torch.arange(n, device=ids.device)[None, :, None]   # rows of C (R·V, D)
        z = F.embedding_bag(flat.transpose(1, 2).reshape(B * T, n), self.codebooks[:n].reshape(-1, self.dim),
                            mode="sum")                                         # (B·T, D): one bag of n codes a frame
        return z.reshape(B, T, self.dim).transpose(1, 2)                        # (B, D, T)

    # -- codebook learning ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _init_kmeans(self, r: torch.Tensor):
        """Initialise each codebook by k-means on the residuals it will see in the first batch (of every rank)."""
        r = _rows_of_all_ranks(r)
        for j in range(self.n_q):
            self.codebooks[j] = kmeans(r, self.codebook_size)
            i_j = nearest_code(r, self.codebooks[j])
            self.cluster_size[j] = torch.bincount(i_j, minlength=self.codebook_size).float()
            self.embed_sum[j] = self.codebooks[j] * self.cluster_size[j, :, None]
            r = r - self.codebooks[j][i_j]
        self.initialized.fill_(True)

    @torch.no_grad()
    def restart_ema_stats(self, count: float = 1.0):
        """Restart the EMA statistics from the current codebooks (N_k = count, S_k = count · C_k), so that training
        continues from loaded codebooks (an exported codec stores none) without moving them on the first step."""
        self.cluster_size.fill_(count)
        self.embed_sum.copy_(self.codebooks * count)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, j: int, r: torch.Tensor, i_j: torch.Tensor, keep=None):
        """EMA codebook step for quantizer j (Laplace-smoothed counts, as VQ-VAE-2), then dead-code restart.

            N_k ← γ N_k + (1 − γ) n_k          n_k = #{rows assigned to code k}
            S_k ← γ S_k + (1 − γ) Σ_{i→k} r_i
            C_k ← S_k / Ñ_k,   Ñ_k = (N_k + ε) / (Σ N + V ε) · Σ N
        A code is dead when N_k < dead_ratio · (rows per batch) / V, i.e. when it is used `dead_ratio` times less
        than under uniform use. The threshold is relative because an absolute one (EnCodec's 2) would declare every
        code dead with small batches (the toy batch has 640 frames for 1024 codes: 0.6 uses per code). A dead code
        is restarted at a random residual of the batch, with its statistics reset to match (N_k = threshold,
        S_k = threshold · C_k), so the next EMA step keeps it.
        """
        if keep is not None:
            r, i_j = r[keep], i_j[keep]
        V, g = self.codebook_size, self.decay
        counts = _sum_over_ranks(torch.bincount(i_j, minlength=V).to(r.dtype))
        sums = _sum_over_ranks(torch.zeros(V, self.dim, dtype=r.dtype, device=r.device).index_add_(0, i_j, r))
        rows = int(_sum_over_ranks(torch.tensor(float(len(r)), device=r.device)))
        self.cluster_size[j].mul_(g).add_(counts, alpha=1 - g)
        self.embed_sum[j].mul_(g).add_(sums, alpha=1 - g)
        n = self.cluster_size[j].sum()
        smoothed = (self.cluster_size[j] + self.eps) / (n + V * self.eps) * n
        self.codebooks[j] = self.embed_sum[j] / smoothed[:, None]
        threshold = self.dead_ratio * rows / V
        dead = self.cluster_size[j] < threshold
        if dead.any() and rows:
            pick = torch.randint(rows, (int(dead.sum()),), device=r.device)
            fresh = _rows_of_all_ranks(r)[pick]
            self.codebooks[j][dead] = fresh
            self.cluster_size[j][dead] = threshold
            self.embed_sum[j][dead] = fresh * threshold

    def perplexity(self, ids: torch.Tensor) -> torch.Tensor:
        """Codebook usage per quantizer from ids (B, R, T): exp(entropy of code frequencies), in [1, V]."""
        p = torch.stack([torch.bincount(ids[:, j].reshape(-1), minlength=self.codebook_size).float()
                         for j in range(ids.shape[1])])
        p = p / p.sum(1, keepdim=True)
        return torch.exp(-(p * torch.log(p.clamp(min=1e-12))).sum(1))

    # -- §3.2 CE-RVQ ----------------------------------------------------------------------------------------------
    def ce_rvq_loss(self, z0_hat: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor | None = None,
                    low_precision: bool = False) -> torch.Tensor:
        """CE-RVQ (§3.2): cross-entropy of each quantizer's ground-truth ID, given the predicted latent.

            for j = 1..R:   r̂_j = ẑ_0 − Σ_{i<j} e_i            (e_i: ground-truth code vectors, from `ids`)
                            logits_j[k] = −||r̂_j − C_j[k]||²     (= 2 r̂_j·C_j[k] − ||C_j[k]||² + const)
                            L_j = CE(softmax(logits_j), i_j)
            L_ce-rvq = mean_j L_j   (mean over real frames, `mask` (B, T) True on them)

        Computed on the real frames only, by `CERVQLoss` (one matrix product per quantizer forward, one for all of
        them backward). The codebooks are constants here: the gradient flows to ẑ_0 only. `low_precision`: the
        matrix products in bf16 and the softmax's output stored in bf16 (computed, and the loss summed, in fp32), as
        under bf16 autocast, where it is chosen by itself.
        """
        B, D, T = z0_hat.shape
        r = z0_hat.transpose(1, 2).reshape(-1, D)                                # (B*T, D)
        target = ids.transpose(1, 2).reshape(-1, ids.shape[1])                   # (B*T, R)
        if mask is not None:
            keep = mask.reshape(-1)
            r, target = r[keep], target[keep]
        with_grad = torch.is_grad_enabled() and r.requires_grad
        return CERVQLoss.apply(r, target, self.codebooks.detach(), low_precision, with_grad)


class CERVQLoss(torch.autograd.Function):
    """L_ce-rvq of rows r (N, D) with ground-truth IDs (N, R) over codebooks C (R, V, D), with its gradient in closed
    form. Autograd would keep, per quantizer, the logits, their log-softmax and the one-hot gradient, and run the
    softmax's backward; here the forward, while it still holds p_j = softmax(logits_j), adds up the gradient

        ∂L/∂ẑ_0 = 2/(N R) Σ_j (p_j − onehot(i_j)) C_j = 2/(N R) (Σ_j p_j C_j − Σ_j e_j),

    since ∂logits_j[k]/∂r̂_j = 2 C_j[k] and r̂_j = ẑ_0 − (constants), and keeps only that (N, D) sum for the
    backward, which scales it by the incoming gradient. `with_grad` False (no backward will follow, e.g. under
    torch.no_grad) skips the sum. Exact: the same value and gradient as `F.cross_entropy` on the logits, to float
    rounding (tested)."""

    @staticmethod
    def forward(ctx, r: torch.Tensor, target: torch.Tensor, C: torch.Tensor, low_precision: bool = False,
                with_grad: bool = True):
        R, V, D = C.shape
        N = len(r)
        mm = torch.bfloat16 if low_precision or torch.is_autocast_enabled(r.device.type) else torch.float32
        Cm, c2 = C.to(mm), torch.linalg.vector_norm(C, dim=2).square().to(mm)   # (R, V, D), ||C_j[k]||² (R, V)
        grad = r.new_zeros(N, D, dtype=torch.float32) if with_grad else None     # Σ_j (p_j − onehot(i_j)) C_j
        # one logits and one probabilities buffer for all quantizers: fresh (N, V) tensors per quantizer cost more
        # in page faults than the softmax itself on a CPU
        logits, p = r.new_empty(N, V, dtype=mm), r.new_empty(N, V, dtype=mm)
        total = torch.zeros((), device=r.device)
        r_j = r.float()                                                         # r̂_1 = ẑ_0
        for j in range(R):
            e_j = F.embedding(target[:, j], C[j])                               # (N, D) ground-truth code vectors
            # BEGIN SOLUTION 5
            # Provides: p (N, V), the softmax of this quantizer's logits, written into the buffers `logits` and `p`
            #   (the gradient below reads p, in dtype mm); total += Σ_rows −log p[row, target[row, j]];
            #   r_j ← r_j − e_j, the residual r̂_{j+1} of the next quantizer.
            torch.addmm(-c2[j], r_j.to(mm), Cm[j].T, alpha=2, out=logits)      # 2 r̂_j·C_j[k] − ||C_j[k]||²
            torch.softmax(logits, 1, out=p)                                     # computed in fp32, stored as mm
            p_true = p.gather(1, target[:, j:j + 1])[:, 0].float()
            ce = -torch.log(p_true)                                             # = log Σ_k exp(logits[k]) − logit
            tiny = p_true < 1e-30                                               # p underflowed: the exact form
            if tiny.any():
                picked = logits[tiny].float().gather(1, target[tiny, j:j + 1])[:, 0]
                ce[tiny] = torch.logsumexp(logits[tiny].float(), 1) - picked
            total = total + ce.sum()
            r_j = r_j - e_j                                                     # r̂_{j+1} = r̂_j − e_j
            # END SOLUTION
            if grad is not None:
                grad += torch.mm(p, Cm[j])
                grad -= e_j
        ctx.save_for_backward(grad)
        ctx.scale = 2 / (max(N, 1) * R)
        return total / (max(N, 1) * R)

    @staticmethod
    def backward(ctx, grad_out):
        grad, = ctx.saved_tensors
        if grad is None:
            raise RuntimeError("CERVQLoss was computed with with_grad=False: it has no gradient")
        return grad * (ctx.scale * grad_out), None, None, None, None
