"""Corpora and front ends (paper §4.1): text → phonemes, audio → pitch and features, the embedded eSpeak toy corpus,
LibriTTS / LibriSpeech readers, the feature cache and its loader, and the singing score. Knows no model."""
