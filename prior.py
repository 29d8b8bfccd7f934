"""Prior model (paper §3.2): phoneme encoder, duration and pitch predictors, length regulator.

Status: not implemented yet; issue [3] builds it. Nothing here can be called yet."""
