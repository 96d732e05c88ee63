"""Temporal Dynamic CNNs (TDY-CNN, DTDY-CNN) for speaker verification in SpeechBrain."""

__version__ = "0.1.0"
