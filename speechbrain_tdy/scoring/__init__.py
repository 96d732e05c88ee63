"""Scores of trials (cosine, s-norm, as-norm) on whole embedding matrices and
the error rates of a trial list (EER, minDCF)."""
