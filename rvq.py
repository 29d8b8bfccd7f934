"""Residual vector quantization (paper §3.1, Eq. 1) and the CE-RVQ loss (§3.2).

Status: not implemented yet; issue [2] builds it. Planned contents: R codebooks of V codes of dimension D,
`encode(h) -> ids (B, R, T)` by Eq. 1 (r_1 = h; i_j = argmin_k ||r_j - C_j[k]||^2; r_{j+1} = r_j - e_j),
`decode(ids) -> z = sum_j e_j`, straight-through estimator, commitment loss, EMA codebooks, and the CE-RVQ loss.
Nothing here can be called yet."""
