"""Training machinery (paper §4): the one training loop both stages plug into, checkpoints, DDP, the preset table."""
