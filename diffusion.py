"""Latent diffusion (paper §3.2): VP SDE, WaveNet denoiser (Fig. 4), diffusion loss, samplers.

Status: not implemented yet; issue [3] builds it. Nothing here can be called yet."""
