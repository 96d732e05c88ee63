"""Verification scores: cosine similarity, the paper's crop distance, and
score normalisation against a cohort.

Shared by the recipe's ``verify.py`` and :class:`speechbrain_tdy.inference.TDYSpeakerRecognition`,
so that a threshold calibrated by one applies to the other.
"""
import torch

SCORE_NORMS = (None, "s-norm", "as-norm")


def pair_score(enrol, test):
    """Score of one trial from L2-normalised embeddings.

    Whole-utterance embeddings (dim,) give their cosine similarity; crop
    embeddings (num_crops, dim) give minus the mean Euclidean distance over all
    crop pairs (the paper's evaluation).

    >>> a = torch.tensor([0.6, 0.8])
    >>> round(pair_score(a, a), 4), round(pair_score(a.expand(10, 2), a.expand(10, 2)), 4)
    (1.0, -0.0)
    """
    if enrol.dim() == 1:
        return float(enrol @ test)
    return -float(torch.cdist(enrol, test).mean())


def cohort_statistics(embedding, cohort, top_n=None):
    """Mean and standard deviation of the cosine scores of ``embedding`` (dim,)
    against a cohort (n, dim), over the ``top_n`` highest scores (adaptive
    s-norm) or all of them (top_n None)."""
    scores = cohort @ embedding
    if top_n is not None:
        scores = scores.topk(min(top_n, len(scores))).values
    return scores.mean(), scores.std()


def normalise_score(score, enrol, test, cohort, top_n=None):
    """Symmetric (adaptive) s-norm of one cosine ``score``:
    0.5 * ((s - mu_e) / sigma_e + (s - mu_t) / sigma_t)."""
    total = 0.0
    for embedding in (enrol, test):
        mean, std = cohort_statistics(embedding, cohort, top_n)
        if not float(std) > 0:
            raise ValueError(f"Cohort scores have no spread (std {float(std)}): s-norm needs a cohort of at least "
                             "2 distinct embeddings (and as_norm_top_n >= 2)")
        total += (score - float(mean)) / float(std)
    return 0.5 * total


def score_pairs(pairs, embeddings, score_norm=None, cohort=None, top_n=None):
    """Scores (n,) of ``pairs`` of keys into ``embeddings`` (key -> L2-normalised tensor).

    ``score_norm`` is None, "s-norm" or "as-norm" (the latter two need a
    ``cohort`` (n, dim) of L2-normalised whole-utterance embeddings; as-norm
    uses the ``top_n`` closest cohort members).
    """
    if score_norm not in SCORE_NORMS:
        raise ValueError(f"Unknown score_norm {score_norm!r}; expected one of {SCORE_NORMS}")
    if score_norm is not None and cohort is None:
        raise ValueError(f"score_norm={score_norm!r} needs a cohort of embeddings")
    scores = []
    for enrol_key, test_key in pairs:
        enrol, test = embeddings[enrol_key], embeddings[test_key]
        score = pair_score(enrol, test)
        if score_norm is not None:
            if enrol.dim() != 1:
                raise ValueError("Score normalisation works on whole-utterance cosine scores, not crop scores")
            score = normalise_score(score, enrol, test, cohort, top_n if score_norm == "as-norm" else None)
        scores.append(score)
    return torch.tensor(scores)


def score_trials(trials, embeddings, score_norm=None, cohort=None, top_n=None):
    """Scores (n,) of trials, see :func:`speechbrain_tdy.scoring.scores.score_pairs`."""
    return score_pairs([(trial.enrol, trial.test) for trial in trials], embeddings, score_norm, cohort, top_n)
