"""Embedding audio files and scoring trials.

Shared by the pretrained interface, the recipe's validation (EER on the dev
list during training) and ``verify.py``, so that a threshold calibrated by one
applies to the others.
"""
from pathlib import Path

import torch
import torch.nn.functional as F
from speechbrain.utils.data_utils import batch_pad_right

from speechbrain_tdy.dataio.audio import MAX_DURATION, MIN_DURATION, audio_header, evenly_spaced_crops, load_utterance
from speechbrain_tdy.dataio.batching import length_batches


def embed_files(embed, paths, root=None, sample_rate=16000, min_samples=int(MIN_DURATION * 16000),
                crop_samples=None, num_crops=10, batch_samples=None, max_duration=MAX_DURATION):
    """L2-normalised embeddings of audio files: the one way this package turns
    a file into an embedding (the interface's ``embed_file`` and
    ``verify_files``, ``verify.py`` and training's dev EER all call it).

    Each file is read by :func:`~speechbrain_tdy.dataio.audio.load_utterance`
    (mono, resampled, checked, wrap-padded to ``min_samples``; files longer
    than ``max_duration`` seconds are refused before decoding). By default
    each file is embedded alone, at its own length: a trial list then scores
    exactly as the interface scores its pairs. With ``batch_samples``, files
    of similar header durations are embedded in zero-padded batches of at
    most that many padded samples (a longer file alone): the same embeddings
    up to float rounding, which a TDY model's attention can amplify (it is a
    softmax at temperature 1), so scores then differ slightly from the
    interface's. With ``crop_samples``, each file is ``num_crops`` evenly
    spaced crops of that many samples, embedded as one batch (the paper's
    evaluation).

    Arguments
    ---------
    embed : callable
        wavs (batch, samples), relative lengths (batch,) -> embeddings (batch, dim);
        it must ignore padding, as :class:`~speechbrain_tdy.embedding.pipeline.EmbeddingPipeline` does.
    paths : iterable of str
        Audio files, relative to ``root`` if given; also the keys of the result.

    Returns
    -------
    dict
        path -> tensor (dim,) for whole utterances, (num_crops, dim) for crops.
    """
    def read(path):
        return load_utterance(Path(root or "") / path, sample_rate, min_samples, max_duration)

    embeddings = {}
    if crop_samples is not None:
        for path in paths:
            embeddings[path] = embed_waveforms(embed, list(evenly_spaced_crops(read(path), crop_samples, num_crops)))
        return embeddings
    paths = list(paths)
    batches = [[path] for path in paths]
    if batch_samples is not None:
        frames = [_header_frames(Path(root or "") / path) for path in paths]
        batches = [[paths[i] for i in batch] for batch in length_batches(frames, max_padded=batch_samples)]
    for batch in batches:
        embeddings.update(zip(batch, embed_waveforms(embed, [read(path) for path in batch])))
    return embeddings


@torch.no_grad()
def embed_waveforms(embed, wavs):
    """L2-normalised embeddings (batch, dim) on the CPU of waveforms ``wavs``
    (a list of (samples,) tensors of any lengths), zero-padded into one batch
    with their relative lengths: the one embedding step of :func:`embed_files`
    and of batch embedding (:func:`~speechbrain_tdy.embedding.batch.embed_utterances`)."""
    padded, lengths = batch_pad_right(wavs)
    return F.normalize(embed(padded, lengths), dim=-1).cpu()


def _header_frames(path):
    """Samples per channel in ``path``'s header (0 if unusable: reading it then names the problem)."""
    try:
        return audio_header(path).frames  # refuses a FIFO before opening it
    except (ValueError, OSError):
        return 0
