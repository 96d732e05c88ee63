"""Export a model folder's waveform-to-embedding pipeline to ONNX.

    speechbrain-tdy onnx MODEL_FOLDER [OUT]

writes ``MODEL_FOLDER/embedding_model.onnx`` (or OUT) for any model folder,
exported or converted, of every architecture. The graph takes

* ``wavs``: (batch, samples) float32 waveforms at 16 kHz, zero-padded,
* ``wav_lens``: (batch,) float32 lengths relative to ``samples``,

and returns ``embeddings``: (batch, dim), the unnormalised embeddings that
``TDYSpeakerRecognition.encode_batch`` gives. Batch and time axes are dynamic;
the front end (log mel spectrogram and instance norm) is part of the graph.
Like the PyTorch model, each padded item gets the embedding it would get
alone. Unlike ``encode_batch``, which embeds recordings longer than
``chunk_frames`` chunk by chunk, the graph always runs whole inputs (same
result, memory growing with the length).

Needs the optional dependencies ``pip install 'speechbrain-tdy[onnx]'``
(onnx, onnxruntime). The written file is checked with onnxruntime against
PyTorch before it is put in place.
"""
import warnings
from pathlib import Path

import torch

from speechbrain_tdy.inference.onnx_backend import OnnxEmbeddingModel
from speechbrain_tdy.storage.atomic import atomic_path

#: ONNX opset of the export (STFT needs 17).
OPSET = 17
#: Largest accepted difference between onnxruntime and PyTorch embeddings,
#: relative to the largest embedding value (at least 1).
TOLERANCE = 1e-4


def export_onnx(model, out_path):
    """Write the ONNX graph of ``model`` (a TDYSpeakerRecognition on the CPU
    with the PyTorch backend) to ``out_path``, check it with onnxruntime
    against ``model.encode_batch`` and only then put it in place.

    Raises ValueError if onnxruntime's embeddings differ by more than
    ``TOLERANCE``; nothing is left at ``out_path`` then.
    """
    out_path = Path(out_path)
    embedder = model.pipeline.eval()  # forward: the front end and the model, without chunking
    # A padded item in the example makes the trace keep the length masks
    # (models skip masking when every item is full length).
    generator = torch.Generator().manual_seed(0)
    wavs = 0.1 * torch.randn(2, 48000, generator=generator)
    wav_lens = torch.tensor([1.0, 0.75])
    with atomic_path(out_path) as partial:  # a fresh name beside out_path, removed unless the check passes
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python conditions on lengths
            torch.onnx.export(
                embedder, (wavs, wav_lens), str(partial), input_names=["wavs", "wav_lens"],
                output_names=["embeddings"], opset_version=OPSET, dynamo=False,
                dynamic_axes={"wavs": {0: "batch", 1: "samples"}, "wav_lens": {0: "batch"},
                              "embeddings": {0: "batch"}},
            )
        check_export(model, OnnxEmbeddingModel(partial), out_path)
    return out_path


def check_export(model, onnx_model, name):
    """ValueError naming ``name`` unless ``onnx_model`` reproduces ``model.encode_batch``
    on a padded batch of noise (3 s and 2.1 s)."""
    wavs = 0.1 * torch.randn(2, 48000, generator=torch.Generator().manual_seed(1))
    wav_lens = torch.tensor([1.0, 0.7])
    expected = model.encode_batch(wavs, wav_lens)[:, 0]
    error = float((onnx_model(wavs, wav_lens) - expected).abs().max())
    if error > TOLERANCE * max(1.0, float(expected.abs().max())):
        raise ValueError(f"{name}: onnxruntime does not reproduce the PyTorch model (max abs difference {error:.2e})")
