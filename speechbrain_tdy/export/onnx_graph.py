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
from torch import nn

from speechbrain_tdy.inference.onnx_backend import GRAPH_INPUTS, GRAPH_OUTPUTS, OnnxEmbeddingModel
from speechbrain_tdy.storage.atomic import OutputExistsError, Replaceable, atomic_path

#: ONNX opset of the export (STFT needs 17).
OPSET = 17
#: Largest accepted difference between onnxruntime and PyTorch embeddings,
#: relative to the largest embedding value (at least 1).
TOLERANCE = 1e-4


def padded_log_mel(front_end, wavs, wav_lens):
    """The features of :class:`~speechbrain_tdy.lobes.LogMelInstanceNorm` for a
    padded batch, computed for all items at once by operations that export to ONNX.

    Each item is reflect-padded at its own end (as ``torch.stft(center=True)``
    does for it alone) by gathering samples, so padding never reaches its frames;
    the instance norm uses the item's valid frames only.

    Arguments
    ---------
    front_end : LogMelInstanceNorm
        Supplies the STFT settings, mel filterbank, log offset and norm epsilon.
    wavs : torch.Tensor
        (batch, samples) waveforms.
    wav_lens : torch.Tensor
        (batch,) lengths relative to ``samples``.

    Returns
    -------
    feats : torch.Tensor
        (batch, frames, n_mels), zero beyond each item's frames.
    frame_lens : torch.Tensor
        (batch,) relative feature lengths.

    Example
    -------
    >>> from speechbrain_tdy.lobes import LogMelInstanceNorm
    >>> front_end = LogMelInstanceNorm(n_mels=24)
    >>> wavs, lens = torch.randn(2, 16000), torch.tensor([1.0, 0.5])
    >>> feats, frame_lens = padded_log_mel(front_end, wavs, lens)
    >>> feats.shape, torch.allclose(feats, front_end(wavs, lens), atol=1e-4)
    (torch.Size([2, 101, 24]), True)
    """
    stft = front_end.mel.spectrogram
    half = stft.n_fft // 2
    num_samples = wavs.shape[1]
    samples = torch.round(wav_lens.float() * num_samples).long().clamp(1, num_samples)
    last = (samples - 1).unsqueeze(1)
    # Index of every sample of the reflect-padded item: -j for j < 0, 2 last - j beyond its end.
    index = (torch.arange(num_samples + 2 * half, device=wavs.device) - half).abs().unsqueeze(0)
    index = torch.where(index > last, 2 * last - index, index)
    padded = torch.gather(wavs.float(), 1, torch.minimum(index.clamp(min=0), last))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*return_complex=False.*")
        spectrum = torch.stft(padded, stft.n_fft, stft.hop_length, stft.win_length, stft.window,
                              center=False, return_complex=False)  # ONNX has no complex tensors
    log_mel = torch.log(front_end.mel.mel_scale(spectrum.pow(2).sum(-1)) + front_end.log_offset)
    frames = front_end.num_frames(samples)
    valid = (torch.arange(log_mel.shape[-1], device=wavs.device).unsqueeze(0) < frames.unsqueeze(1))
    valid = valid.to(log_mel.dtype).unsqueeze(1)
    count = frames.to(log_mel.dtype).view(-1, 1, 1)
    mean = (log_mel * valid).sum(-1, keepdim=True) / count
    variance = (((log_mel - mean) * valid) ** 2).sum(-1, keepdim=True) / count
    feats = (log_mel - mean) / torch.sqrt(variance + front_end.norm_eps) * valid
    return feats.transpose(1, 2), frames.float() / log_mel.shape[-1]


class ExportableEmbedder(nn.Module):
    """Front end and embedding model as one module that traces to ONNX:
    wavs (batch, samples), wav_lens (batch,) -> embeddings (batch, dim).

    Arguments
    ---------
    compute_features : LogMelInstanceNorm
    embedding_model : ResNet or VGGM
    """

    def __init__(self, compute_features, embedding_model):
        super().__init__()
        self.compute_features = compute_features
        self.embedding_model = embedding_model

    def forward(self, wavs, wav_lens):
        """wavs: (batch, samples); wav_lens: (batch,). Returns (batch, dim)."""
        feats, frame_lens = padded_log_mel(self.compute_features, wavs, wav_lens)
        return self.embedding_model(feats, frame_lens).squeeze(1)


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
    embedder = ExportableEmbedder(model.mods.compute_features, model.mods.embedding_model).eval()
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
