"""Error rates of a trial list: EER and minDCF of scores; Cllr, minCllr and
the actual detection cost of log-likelihood ratios (LLRs).

Detection costs are unnormalised, as SpeechBrain's ``minDCF`` computes them:
``c_miss * p_target * P_miss + c_fa * (1 - p_target) * P_fa``, so that a
system that always rejects costs ``c_miss * p_target`` (0.05 at p_target
0.05). A trial is accepted when its score (or LLR) is above the threshold.
"""
import math

import numpy as np
import torch
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_curve
from speechbrain.utils.metric_stats import EER

from speechbrain_tdy.storage.checks import checked_number

#: The priors whose actual and minimum detection costs ``verify.py`` reports.
REPORTED_PRIORS = (0.01, 0.05)
#: Priors of a target trial that decisions accept (open interval (0, 1)).
PRIOR_RANGE = (1e-6, 1 - 1e-6)
#: Costs of a miss or a false alarm that decisions accept.
COST_RANGE = (1e-6, 1e6)


def error_rates(scores, labels, p_target=0.05):
    """EER (percent), its threshold, and minDCF at ``p_target``.

    >>> eer, threshold, min_dcf = error_rates(torch.tensor([0.9, 0.8, 0.3, 0.1]), torch.tensor([1, 1, 0, 0]))
    >>> eer
    0.0
    """
    positives, negatives = split_trials(scores, labels)
    eer, threshold = EER(positives, negatives)
    return 100.0 * float(eer), float(threshold), min_dcf(scores, labels, p_target)


def split_trials(values, labels):
    """(target values, non-target values), tensors of ``values``' float type; ValueError unless both exist."""
    values = torch.as_tensor(values)
    values = values if values.is_floating_point() else values.double()
    labels = torch.as_tensor(labels).bool()
    positives, negatives = values[labels], values[~labels]
    if len(positives) == 0 or len(negatives) == 0:
        raise ValueError("Trials need both target and non-target pairs to compute an EER")
    return positives, negatives


def bayes_threshold(p_target, c_miss=1.0, c_fa=1.0, where="decision"):
    """The LLR above which the Bayes decision accepts, at prior ``p_target``
    of a target trial and costs ``c_miss``, ``c_fa``: log(c_fa (1 - p) / (c_miss p)).

    >>> round(bayes_threshold(0.5), 6), round(bayes_threshold(0.01), 4), round(bayes_threshold(0.5, c_miss=10), 4)
    (0.0, 4.5951, -2.3026)
    """
    p_target = checked_number(p_target, f"{where}: p_target", (int, float), *PRIOR_RANGE)
    c_miss = checked_number(c_miss, f"{where}: c_miss", (int, float), *COST_RANGE)
    c_fa = checked_number(c_fa, f"{where}: c_fa", (int, float), *COST_RANGE)
    return math.log(c_fa * (1 - p_target)) - math.log(c_miss * p_target)


def logit(p):
    """log(p / (1 - p))."""
    return math.log(p) - math.log1p(-p)


def cllr(llrs, labels):
    """Cost of log-likelihood ratios in bits (Brümmer and du Preez, 2006): the
    mean over targets of log2(1 + exp(-llr)) and over non-targets of
    log2(1 + exp(llr)), averaged. 0 for perfect, 1 for LLRs that are all 0;
    it grows without bound for confident errors.

    >>> round(cllr([0.0, 0.0], [1, 0]), 6), round(cllr([50.0, -50.0], [1, 0]), 6)
    (1.0, 0.0)
    """
    positives, negatives = (values.double().numpy() for values in split_trials(llrs, labels))
    bits = np.logaddexp(0, -positives).mean() + np.logaddexp(0, negatives).mean()
    return float(bits / (2 * math.log(2)))


def min_cllr(scores, labels):
    """Cllr of the best monotone map of ``scores`` to LLRs: pool-adjacent-
    violators (isotonic regression) turns them into target posteriors at the
    list's own proportion of targets, whose log odds less that proportion's
    are the LLRs. ``cllr - min_cllr`` is what calibration loses.

    >>> min_cllr([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    0.0
    """
    positives, negatives = split_trials(scores, labels)
    values = torch.cat([positives, negatives]).double().numpy()
    truth = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])
    posteriors = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True).fit_transform(values, truth)
    with np.errstate(divide="ignore"):
        llrs = np.log(posteriors) - np.log1p(-posteriors) - logit(len(positives) / len(values))
    return cllr(llrs, truth)


def min_dcf(scores, labels, p_target, c_miss=1.0, c_fa=1.0):
    """The lowest detection cost of accepting the scores above a threshold,
    over all thresholds (scikit-learn's ROC: sorted once, memory linear in
    the number of trials).

    >>> min_dcf([0.9, 0.5, 0.3, 0.6], [1, 1, 0, 0], p_target=0.05)
    0.025
    """
    positives, negatives = split_trials(scores, labels)
    values = torch.cat([positives, negatives]).double().numpy()
    truth = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])
    p_fa, p_hit, _ = roc_curve(truth, values, drop_intermediate=False)
    return float(detection_cost(1 - p_hit, p_fa, p_target, c_miss, c_fa).min())


def operating_point(llrs, labels, threshold):
    """(P_miss, P_fa) of accepting the trials whose LLR (or score) is above ``threshold``."""
    positives, negatives = split_trials(llrs, labels)
    return float((positives <= threshold).double().mean()), float((negatives > threshold).double().mean())


def detection_cost(p_miss, p_fa, p_target, c_miss=1.0, c_fa=1.0):
    """c_miss p_target P_miss + c_fa (1 - p_target) P_fa (unnormalised).

    >>> detection_cost(0.5, 0.1, p_target=0.05)
    0.12
    """
    return c_miss * p_target * p_miss + c_fa * (1 - p_target) * p_fa


def calibration_report(scores, llrs, labels, priors=REPORTED_PRIORS, score_threshold=None):
    """How well ``llrs`` (calibrated ``scores``) decide: Cllr, minCllr (of
    the scores), and per prior the actual DCF of the Bayes decisions, the
    minimum DCF over all thresholds of the scores, the actual operating point
    (P_miss, P_fa) and, given a ``score_threshold``, the DCF of accepting the
    scores above it ("at_threshold"). Keys of "DCF" are the priors as text.

    >>> report = calibration_report(torch.tensor([0.9, 0.1]), torch.tensor([5.0, -5.0]), [1, 0])
    >>> report["Cllr"] < 0.01, report["minCllr"], report["DCF"]["0.01"]["actual"]
    (True, 0.0, 0.0)
    """
    report = {"Cllr": cllr(llrs, labels), "minCllr": min_cllr(scores, labels), "DCF": {}}
    for prior in priors:
        p_miss, p_fa = operating_point(llrs, labels, bayes_threshold(prior))
        costs = report["DCF"][f"{prior:g}"] = {
            "actual": detection_cost(p_miss, p_fa, prior),
            "minimum": min_dcf(scores, labels, prior),
            "P_miss": p_miss,
            "P_fa": p_fa,
        }
        if score_threshold is not None:
            costs["at_threshold"] = detection_cost(*operating_point(scores, labels, score_threshold), prior)
    return report
