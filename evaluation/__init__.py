"""Evaluation (paper §4.4): metrics, the phoneme recogniser, the demo stages and the benchmarks. Scripts only:
no component file imports from here."""
