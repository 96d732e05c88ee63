"""Embedding the files of a trial list and scoring the trials.

Shared by the recipe's validation (EER on the dev list during training) and
``verify.py``.
"""
import logging
from pathlib import Path

import soundfile as sf
import torch
import torch.nn.functional as F
from speechbrain.utils.metric_stats import EER, minDCF

from speechbrain_tdy.dataio.audio import check_voiced, evenly_spaced_crops, read_segment
from speechbrain_tdy.scoring import score_pairs

logger = logging.getLogger(__name__)


#: Padded audio per batch of whole utterances in :func:`embed_files` (seconds at 16 kHz).
BATCH_SECONDS = 96


@torch.no_grad()
def embed_files(embed, paths, root, sample_rate=16000, crop_samples=None, num_crops=10,
                batch_samples=BATCH_SECONDS * 16000):
    """Embeddings of audio files, L2-normalised.

    Whole utterances are embedded in batches of similar durations (read from
    the headers), zero-padded, with their relative lengths, each of at most
    ``batch_samples`` padded samples (a longer file alone); ``embed`` must
    ignore the padding, as :class:`~speechbrain_tdy.pipeline.EmbeddingPipeline`
    does. With ``crop_samples``, each file's crops are one batch.

    Arguments
    ---------
    embed : callable
        wavs (batch, samples), relative lengths (batch,) -> embeddings (batch, dim).
    paths : iterable of str
        File paths relative to ``root``.
    crop_samples : int or None
        None embeds whole utterances; otherwise ``num_crops`` evenly spaced
        crops of that many samples are embedded (the paper's evaluation).

    Returns
    -------
    dict
        path -> tensor (dim,) for whole utterances, (num_crops, dim) for crops.
    """
    embeddings = {}
    if crop_samples is not None:
        for path in paths:
            crops = evenly_spaced_crops(_voiced(Path(root) / path, sample_rate), crop_samples, num_crops)
            embeddings[path] = F.normalize(embed(crops, torch.ones(num_crops)), dim=-1).cpu()
        return embeddings
    for batch in _length_batches(paths, root, batch_samples):
        wavs = [_voiced(Path(root) / path, sample_rate) for path in batch]
        longest = max(len(wav) for wav in wavs)
        padded = torch.stack([F.pad(wav, (0, longest - len(wav))) for wav in wavs])
        lengths = torch.tensor([len(wav) / longest for wav in wavs])
        embeddings.update(zip(batch, F.normalize(embed(padded, lengths), dim=-1).cpu()))
    return embeddings


def _voiced(path, sample_rate):
    """``read_segment(path)``, refusing digital silence."""
    wav = read_segment(str(path), sample_rate=sample_rate)
    check_voiced(path, wav)
    return wav


def _length_batches(paths, root, batch_samples):
    """``paths`` in batches of similar header durations, longest first, each of at
    most ``batch_samples`` padded samples (or one file)."""
    def frames(path):
        try:
            return sf.info(str(Path(root) / path)).frames
        except (RuntimeError, OSError):
            return 0  # read_segment names the file and the problem when the batch is read

    ordered = sorted(((frames(path), path) for path in paths), reverse=True)
    batches, batch, longest = [], [], 0
    for length, path in ordered:
        if batch and (len(batch) + 1) * longest > batch_samples:
            batches.append(batch)
            batch = []
        if not batch:
            longest = length
        batch.append(path)
    return batches + [batch] if batch else batches


def score_trials(trials, embeddings, score_norm=None, cohort=None, top_n=None):
    """Scores (n,) of trials, see :func:`speechbrain_tdy.scoring.score_pairs`."""
    return score_pairs([(trial.enrol, trial.test) for trial in trials], embeddings, score_norm, cohort, top_n)


def error_rates(scores, labels, p_target=0.05):
    """EER (percent), its threshold, and minDCF at ``p_target``.

    >>> eer, threshold, min_dcf = error_rates(torch.tensor([0.9, 0.8, 0.3, 0.1]), torch.tensor([1, 1, 0, 0]))
    >>> eer
    0.0
    """
    labels = torch.as_tensor(labels).bool()
    positives, negatives = scores[labels], scores[~labels]
    if len(positives) == 0 or len(negatives) == 0:
        raise ValueError("Trials need both target and non-target pairs to compute an EER")
    eer, threshold = EER(positives, negatives)
    min_dcf, _ = minDCF(positives, negatives, p_target=p_target)
    return 100.0 * float(eer), float(threshold), float(min_dcf)
