"""A model's fingerprint: its embedding of a fixed probe signal, kept by embeddings
files and galleries to refuse mixing models."""
import math

import torch


def probe_signal(sample_rate=16000):
    """The fixed 1-s signal (samples,) of :meth:`TDYSpeakerRecognition.fingerprint`:
    a rising chirp plus a 230-Hz tone, amplitude-modulated at 3 Hz."""
    t = torch.arange(sample_rate, dtype=torch.float64) / sample_rate
    chirp = torch.sin(2 * math.pi * (100 + 1500 * t) * t) + 0.5 * torch.sin(2 * math.pi * 230 * t)
    return (0.1 * chirp * (1 + 0.5 * torch.sin(2 * math.pi * 3 * t))).float()


def same_fingerprint(a, b, atol=1e-3):
    """Whether two fingerprints (dim,) come from the same model (the ONNX and
    PyTorch backends, or two devices, agree far better than ``atol``)."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return a.shape == b.shape and float((a - b).abs().max()) <= atol
