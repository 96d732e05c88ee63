"""Export a model folder's waveform-to-embedding pipeline to ONNX.

    speechbrain-tdy onnx MODEL_FOLDER [OUT] [--overwrite]

writes ``MODEL_FOLDER/embedding_model.onnx`` (or OUT) for any model folder,
exported or converted, of every architecture. An existing OUT is replaced
only with ``--overwrite``, and only if it is a graph of this exporter
(:data:`ONNX_GRAPH`). The graph takes

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
(onnx, onnxruntime). The graph is serialised in memory (no file of the
exporter's own, no external data files), written under a fresh temporary
name, checked there with onnxruntime against PyTorch and only then put in
place (:func:`~speechbrain_tdy.storage.atomic.atomic_path`).
"""
import io
import warnings
from pathlib import Path

import torch

from speechbrain_tdy.inference.onnx_backend import GRAPH_INPUTS, GRAPH_OUTPUTS, OnnxEmbeddingModel
from speechbrain_tdy.storage.atomic import OutputExistsError, Replaceable, atomic_path

#: ONNX opset of the export (STFT needs 17).
OPSET = 17
#: Largest accepted difference between onnxruntime and PyTorch embeddings,
#: relative to the largest embedding value (at least 1).
TOLERANCE = 1e-4


def is_embedding_graph(path):
    """Whether ``path`` is an ONNX graph with the exporter's inputs and output
    (read without its external data, if it names any)."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # protobuf's decode errors have no common public base
        return False
    return ([i.name for i in graph.input], [o.name for o in graph.output]) == (GRAPH_INPUTS, GRAPH_OUTPUTS)


#: What ``overwrite`` may replace: an ONNX graph of this exporter.
ONNX_GRAPH = Replaceable("an ONNX embedding graph of speechbrain-tdy onnx (inputs wavs, wav_lens; output embeddings)",
                         is_embedding_graph)


def export_onnx(model, out_path, overwrite=False):
    """Write the ONNX graph of ``model`` (a TDYSpeakerRecognition on the CPU
    with the PyTorch backend) to ``out_path``, check it with onnxruntime
    against ``model.encode_batch`` and only then put it in place.

    ``out_path`` must not exist or, with ``overwrite``, be a graph of this
    exporter (checked before the export and again when it is replaced);
    OutputExistsError otherwise. Raises ValueError if onnxruntime's embeddings
    differ by more than ``TOLERANCE``; ``out_path`` is as it was then.
    """
    out_path = Path(out_path)
    embedder = model.pipeline.eval()  # forward: the front end and the model, without chunking
    # A padded item in the example makes the trace keep the length masks
    # (models skip masking when every item is full length).
    generator = torch.Generator().manual_seed(0)
    wavs = 0.1 * torch.randn(2, 48000, generator=generator)
    wav_lens = torch.tensor([1.0, 0.75])
    try:
        with atomic_path(out_path, ONNX_GRAPH if overwrite else None) as partial:
            graph = io.BytesIO()  # in memory: the exporter writes no file (external data) beside the output
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer warnings about Python conditions on lengths
                torch.onnx.export(
                    embedder, (wavs, wav_lens), graph, input_names=GRAPH_INPUTS, output_names=GRAPH_OUTPUTS,
                    opset_version=OPSET, dynamo=False,
                    dynamic_axes={"wavs": {0: "batch", 1: "samples"}, "wav_lens": {0: "batch"},
                                  "embeddings": {0: "batch"}},
                )
            partial.write_bytes(graph.getvalue())
            check_export(model, OnnxEmbeddingModel(partial), out_path)
    except OutputExistsError as error:
        if overwrite or not out_path.exists():
            raise
        raise OutputExistsError(f"{out_path} already exists; pass --overwrite to replace an ONNX graph of this "
                                "exporter there") from error
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
