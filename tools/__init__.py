"""Development tools: the assignment maker and grader, the sampler sweep, the toy corpus's word chooser."""
