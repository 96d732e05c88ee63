"""Waveform -> features -> lengths -> embedding, in one object.

:class:`EmbeddingPipeline` is what training, verification, export, the
pretrained interface, the converter and the analysis tools call to turn
waveforms into speaker embeddings, so that they all compute the same thing:

* ``forward`` (training, differentiable): the front end with each item's
  length, then the embedding model with the matching feature lengths; the
  ONNX export (:mod:`speechbrain_tdy.export.onnx_graph`) traces it, so the
  ONNX graph runs every input whole, never in chunks (the same embeddings,
  memory growing with the length);
* ``embed`` (inference, no gradients): the same numbers, and recordings longer
  than ``chunk_frames`` frames are run through the convolutional trunk chunk
  by chunk, so memory grows with the chunk, not the recording.

Chunking is exact: the trunk of every model here is shift-equivariant
(moving the input by ``model.time_stride`` frames moves its frame-level
output by one), so each chunk is given ``context_frames`` of extra input on
both sides to cover the receptive field, the chunks' central outputs are
concatenated and pooled once.

:meth:`EmbeddingPipeline.compile_inference` runs ``embed``'s single pass
through ``torch.compile`` (see :mod:`speechbrain_tdy.embedding.compiled`).
"""
import torch
from torch import nn

from speechbrain_tdy.embedding.compiled import BUCKET_FRAMES, CompiledForward


class EmbeddingPipeline(nn.Module):
    """A front end and an embedding model as one module.

    Arguments
    ---------
    compute_features : LogMelInstanceNorm
        Front end, waveforms (batch, samples) -> features (batch, frames, n_mels).
    embedding_model : nn.Module
        Features (batch, frames, n_mels) and relative lengths -> embeddings
        (batch, 1, dim), with ``frame_embeddings``, ``pooling``, ``fc`` and
        ``time_stride`` for chunking (the lobes' ResNet and VGGM).
    chunk_frames, context_frames : int
        Longest input embedded in one pass by :meth:`embed`, and the context
        given to each chunk on both sides (rounded up to multiples of the
        model's time stride).

    Example
    -------
    >>> from speechbrain_tdy.lobes import LogMelInstanceNorm, tdy_resnet34_quarter
    >>> pipeline = EmbeddingPipeline(LogMelInstanceNorm(40), tdy_resnet34_quarter(n_mels=40)).eval()
    >>> pipeline(torch.randn(2, 16000), torch.tensor([1.0, 0.7])).shape
    torch.Size([2, 512])
    >>> chunked = EmbeddingPipeline(pipeline.compute_features, pipeline.embedding_model, chunk_frames=100).eval()
    >>> chunked.embed(torch.randn(1, 64000)).shape  # 401 frames: 5 chunks
    torch.Size([1, 512])
    """

    def __init__(self, compute_features, embedding_model, chunk_frames=3000, context_frames=384):
        super().__init__()
        self.compute_features = compute_features
        self.embedding_model = embedding_model
        self.chunk_frames, self.context_frames = chunk_frames, context_frames
        self.compiled_forward = None

    def compile_inference(self, bucket_frames=BUCKET_FRAMES, **options):
        """Run the embedding model of :meth:`embed`'s single pass (recordings
        up to ``chunk_frames``) through ``torch.compile`` with ``options``,
        time padded to multiples of ``bucket_frames``; eager if that fails
        (see :class:`~speechbrain_tdy.embedding.compiled.CompiledForward`). Training
        (``forward``) is not affected. Returns self."""
        self.compiled_forward = CompiledForward(self.embedding_model, bucket_frames, **options)
        return self

    def forward(self, wavs, wav_lens=None):
        """wavs: (batch, samples) at 16 kHz; wav_lens: (batch,) relative lengths
        (None: all full). Returns embeddings (batch, dim)."""
        return self.embedding_model(*self.features(wavs, wav_lens)).squeeze(1)

    def features(self, wavs, wav_lens=None):
        """Features (batch, frames, n_mels) and their relative lengths (batch,)
        (None when ``wav_lens`` is None)."""
        feats = self.compute_features(wavs, wav_lens)
        if wav_lens is None:
            return feats, None
        return feats, self.compute_features.frame_lengths(wav_lens.to(feats.device), wavs.shape[1])

    @torch.no_grad()
    def embed(self, wavs, wav_lens=None):
        """As ``forward`` without gradients, recordings longer than
        ``chunk_frames`` embedded item by item, chunk by chunk. Padding never
        changes an item's embedding. Returns (batch, dim)."""
        if self.compute_features.num_frames(wavs.shape[1]) <= self.chunk_frames:
            if self.compiled_forward is None:
                return self(wavs, wav_lens)
            return self.compiled_forward(*self.features(wavs, wav_lens)).squeeze(1)
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0], device=wavs.device)
        embeddings = []
        for wav, samples in zip(wavs, torch.round(wav_lens * wavs.shape[1]).long().tolist()):
            feats = self.compute_features.features_in_chunks(wav[:samples], self.chunk_frames)
            embeddings.append(self._embed_in_chunks(feats)[0])
        return torch.stack(embeddings)

    def _embed_in_chunks(self, feats):
        """Embedding (1, dim) of the features (1, frames, n_mels) of one recording."""
        model = self.embedding_model
        stride = model.time_stride
        chunk_frames = -(-self.chunk_frames // stride) * stride
        context_frames = -(-self.context_frames // stride) * stride
        total = feats.shape[1]
        pieces = []
        for first in range(0, total, chunk_frames):
            last = min(first + chunk_frames, total)
            start, stop = max(0, first - context_frames), min(total, last + context_frames)
            frames, _ = model.frame_embeddings(feats[:, start:stop])
            skip = (first - start) // stride
            keep = frames.shape[-1] - skip if last == total else (last - first) // stride
            pieces.append(frames[..., skip : skip + keep])
        frames = torch.cat(pieces, dim=-1)
        return model.fc(model.pooling(frames, None))
