"""Scores of trials (cosine, s-norm, as-norm) on whole embedding matrices, the
error rates of a trial list (EER, minDCF, Cllr, actual DCF) and the model's
calibration (``threshold.json``: scores to log-likelihood ratios, decisions
at a prior)."""
