"""Neural audio codec (paper §3.1): conv encoder with total stride 200 at 16 kHz, RVQ, mirrored decoder.

Status: not implemented yet; issue [2] builds it (with discriminators and the SoundStream-style losses).
Nothing here can be called yet."""
