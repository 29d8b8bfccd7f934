"""Speech prompting (paper §3.3): prompt segment sampling, prompt encoder, m-query attention, FiLM.

Status: not implemented yet; issue [3] builds it. Nothing here can be called yet."""
