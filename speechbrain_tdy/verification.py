"""Embedding the files of a trial list and scoring the trials.

Shared by the recipe's validation (EER on the dev list during training) and
``verify.py``.
"""
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from speechbrain.utils.metric_stats import EER, minDCF

from speechbrain_tdy.dataio.audio import AudioError, evenly_spaced_crops, read_segment
from speechbrain_tdy.scoring import score_pairs

logger = logging.getLogger(__name__)


@torch.no_grad()
def embed_files(embed, paths, root, sample_rate=16000, crop_samples=None, num_crops=10):
    """Embeddings of audio files, L2-normalised.

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
    for path in paths:
        wav = read_segment(str(Path(root) / path), sample_rate=sample_rate)
        if not wav.any():
            raise AudioError(f"{Path(root) / path}: digital silence, there is no voice to embed")
        batch = wav.unsqueeze(0) if crop_samples is None else evenly_spaced_crops(wav, crop_samples, num_crops)
        out = F.normalize(embed(batch, torch.ones(batch.shape[0])), dim=-1).cpu()
        embeddings[path] = out[0] if crop_samples is None else out
    return embeddings


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
