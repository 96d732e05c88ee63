"""Embedding waveforms, including recordings too long for one forward pass.

The convolutional trunk of every model here is shift-equivariant: moving the
input by ``model.time_stride`` frames moves its frame-level output by one
frame. A long recording is therefore run through the trunk in chunks, each
with ``context_frames`` of extra input on both sides that covers the
receptive field; the chunks' central outputs are concatenated and pooled
once. The result equals the whole-recording embedding (up to float rounding)
while memory grows with the chunk size, not the recording length.
"""
import torch


def embed_in_chunks(embedding_model, feats, chunk_frames=3000, context_frames=384):
    """Embedding (1, dim) of features (1, frames, n_mels) computed chunk by chunk.

    Arguments
    ---------
    embedding_model : ResNet or VGGM
        A model with ``frame_embeddings``, ``pooling``, ``fc`` and ``time_stride``.
    feats : torch.Tensor
        (1, frames, n_mels) features of one recording.
    chunk_frames, context_frames : int
        Frames per chunk and of context on each side; both are rounded up to
        multiples of the model's time stride.
    """
    stride = embedding_model.time_stride
    chunk_frames = -(-chunk_frames // stride) * stride
    context_frames = -(-context_frames // stride) * stride
    total = feats.shape[1]
    pieces = []
    for first in range(0, total, chunk_frames):
        last = min(first + chunk_frames, total)
        start, stop = max(0, first - context_frames), min(total, last + context_frames)
        frames, _ = embedding_model.frame_embeddings(feats[:, start:stop])
        skip = (first - start) // stride
        keep = frames.shape[-1] - skip if last == total else (last - first) // stride
        pieces.append(frames[..., skip : skip + keep])
    frames = torch.cat(pieces, dim=-1)
    return embedding_model.fc(embedding_model.pooling(frames, None))


@torch.no_grad()
def embed_waveforms(compute_features, embedding_model, wavs, wav_lens, chunk_frames=3000, context_frames=384):
    """Embeddings (batch, 1, dim) of waveforms (batch, samples) with relative
    lengths (batch,). Padding never changes an item's embedding; a batch longer
    than ``chunk_frames`` frames is embedded item by item, chunk by chunk."""
    if compute_features.num_frames(wavs.shape[1]) <= chunk_frames:
        feats = compute_features(wavs, wav_lens)
        return embedding_model(feats, compute_features.frame_lengths(wav_lens, wavs.shape[1]))
    embeddings = []
    for wav, samples in zip(wavs, torch.round(wav_lens * wavs.shape[1]).long().tolist()):
        feats = compute_features.features_in_chunks(wav[:samples], chunk_frames)
        embeddings.append(embed_in_chunks(embedding_model, feats, chunk_frames, context_frames))
    return torch.stack(embeddings)
