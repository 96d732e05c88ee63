"""A model's calibration: how its scores become decisions, and the scoring it holds for.

Written by the recipe's ``verify.py`` (into the run folder), copied into a
model folder by the export, read by the pretrained interface and the model
card; this module is the one reader and writer of its file,
``threshold.json``, a JSON object::

    {"threshold": 0.43, "calibrated_on": "veri_dev.txt", "EER": 2.1, "minDCF": 0.21,
     "on_evaluation_list": false, "calibrated_at": "2026-12-04",
     "crop": false, "crop_frames": 400, "num_crops": 10,
     "score_norm": null, "as_norm_top_n": 100, "p_target": 0.05,
     "llr": {"slope": 14.2, "offset": -9.8, "fit_prior": 0.05,
             "duration_weights": null, "log_duration_range": null}}

``threshold`` is the EER threshold of the scores on ``calibrated_on``.
``llr`` maps a score to a log-likelihood ratio (:class:`ScoreToLLR`, fitted
by prior-weighted logistic regression as in Brümmer's FoCal and BOSARIS
toolkits, :func:`fit_score_to_llr`, optionally with the log durations of the
two recordings as quality measures); with it a trial is accepted at a prior
and costs when its LLR is above :func:`~speechbrain_tdy.scoring.metrics.bayes_threshold`
(``p_target``: the prior decisions use by default), and an identification
answers from posteriors at a prior of an unknown speaker
(:func:`open_set_posteriors`).

Only ``threshold`` is required; files written by earlier versions (without
``llr``) load as they are and decide at their EER threshold, and earlier
readers ignore the keys they do not know.
"""
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from speechbrain_tdy.scoring.metrics import PRIOR_RANGE, logit, split_trials
from speechbrain_tdy.scoring.scores import SCORE_NORMS
from speechbrain_tdy.storage.atomic import Replaceable, readable_by, write_text_atomically
from speechbrain_tdy.storage.checks import checked_number
from speechbrain_tdy.storage.model_files import SETTINGS, checked_setting

#: Largest threshold.json read.
MAX_CALIBRATION_FILE_BYTES = 64 * 1024
#: JSON keys of the fields whose names differ from the file's.
_KEYS = {"eer": "EER", "min_dcf": "minDCF"}
#: Bounds of an LLR map: a slope that never lets the LLR fall as the score
#: grows, and offsets and duration weights far beyond any fitted one.
MAX_SLOPE, MAX_OFFSET, MAX_DURATION_WEIGHT = 1e6, 1e6, 1e3
#: log(seconds) of a recording: from a millisecond to six days.
LOG_DURATION_RANGE = (-7.0, 13.0)
#: Inverse strength of the ridge penalty of :func:`fit_score_to_llr` on the
#: standardised measures: negligible where targets and non-targets overlap,
#: it keeps the map finite where they do not.
RIDGE_C = 100.0


def pair_log_durations(durations):
    """Quality measures (n, 2) of trials from the durations in seconds (n, 2)
    of their two recordings: log of the shorter, log of the longer (a trial
    scores the same with its sides swapped)."""
    durations = torch.as_tensor(durations, dtype=torch.float64)
    if durations.dim() != 2 or durations.shape[1] != 2 or not bool((durations > 0).all()):
        raise ValueError(f"Expected positive durations of shape (n, 2), got shape {tuple(durations.shape)}")
    return torch.stack([durations.min(dim=1).values, durations.max(dim=1).values], dim=1).log()


@dataclass(frozen=True)
class ScoreToLLR:
    """LLR = slope * score + offset (+ w_short * log d_short + w_long * log d_long).

    With ``duration_weights`` (w_short, w_long) the LLR also depends on the
    durations in seconds of the two recordings (the shorter and the longer),
    their logs clipped to ``log_duration_range``, the range of the trials the
    map was fitted on. ``fit_prior`` is the prior the fit weighted the trials
    at (:func:`fit_score_to_llr`). A slope of 0 says that the scores carried
    no information on those trials.

    >>> ScoreToLLR(slope=10.0, offset=-4.0)([0.2, 0.5]).tolist()
    [-2.0, 1.0]
    """

    slope: float
    offset: float
    fit_prior: float = 0.5
    duration_weights: tuple = None
    log_duration_range: tuple = None

    def __post_init__(self):
        where = "calibration: llr"
        checked_number(self.slope, f"{where}: slope", (int, float), 0.0, MAX_SLOPE)
        checked_number(self.offset, f"{where}: offset", (int, float), -MAX_OFFSET, MAX_OFFSET)
        checked_number(self.fit_prior, f"{where}: fit_prior", (int, float), *PRIOR_RANGE)
        if (self.duration_weights is None) != (self.log_duration_range is None):
            raise ValueError(f"{where}: duration_weights and log_duration_range go together")
        if self.duration_weights is not None:
            object.__setattr__(self, "duration_weights", checked_pair(
                self.duration_weights, f"{where}: duration_weights", -MAX_DURATION_WEIGHT, MAX_DURATION_WEIGHT))
            low, high = checked_pair(self.log_duration_range, f"{where}: log_duration_range", *LOG_DURATION_RANGE)
            if low > high:
                raise ValueError(f"{where}: log_duration_range [{low}, {high}] is empty")
            object.__setattr__(self, "log_duration_range", (low, high))

    @property
    def uses_durations(self):
        return self.duration_weights is not None

    def __call__(self, scores, durations=None):
        """LLRs (n,) float64 of scores (n,), given the durations in seconds
        (n, 2) of the two recordings of each trial if the map uses them."""
        llrs = self.slope * torch.as_tensor(scores, dtype=torch.float64) + self.offset
        if not self.uses_durations:
            return llrs
        if durations is None:
            raise ValueError("This calibration uses the durations of both recordings of a trial; none were given")
        qualities = pair_log_durations(durations).clamp(*self.log_duration_range)
        return llrs + qualities @ torch.tensor(self.duration_weights, dtype=torch.float64)


def checked_pair(values, where, low, high):
    """``values`` as a tuple of two finite numbers in [low, high]; ValueError naming ``where`` otherwise."""
    if not isinstance(values, (list, tuple)) or len(values) != 2:
        raise ValueError(f"{where} must be a list of 2 numbers, got {values!r:.60}")
    return tuple(checked_number(value, where, (int, float), low, high) for value in values)


def fit_score_to_llr(scores, labels, prior=0.05, durations=None):
    """The affine map (:class:`ScoreToLLR`) from scores (n,) of labelled trials
    to LLRs that minimises the cross-entropy of the trials weighted at
    ``prior`` (Cllr at that prior): logistic regression with each target
    weighted by prior / N_target and each non-target by (1 - prior) /
    N_non-target, whose log posterior odds, less logit(prior), are the LLRs
    (Brümmer's linear calibration, as in FoCal and BOSARIS). With
    ``durations`` (n, 2) in seconds, the log durations of the shorter and the
    longer recording are quality measures of the map too (as QMF). The
    measures are standardised and lightly ridge-penalised (:data:`RIDGE_C`),
    so that separable trials give a steep but finite map; scores that rank
    non-targets above targets give slope 0 (the map refitted without them).

    >>> generator = torch.Generator().manual_seed(0)
    >>> labels = torch.arange(40000) % 2 == 0
    >>> llrs = torch.where(labels, 2.0, -2.0) + 2.0 * torch.randn(40000, generator=generator)  # calibrated
    >>> fitted = fit_score_to_llr((llrs + 3.0) / 5.0, labels, prior=0.5)  # a score that hides them
    >>> round(fitted.slope, 1), round(fitted.offset, 1)
    (5.0, -3.0)
    """
    prior = checked_number(prior, "fit_score_to_llr: prior", (int, float), *PRIOR_RANGE)
    positives, negatives = split_trials(scores, labels)
    labels = torch.as_tensor(labels).bool().numpy()
    scores = torch.as_tensor(scores, dtype=torch.float64).numpy()[:, None]
    if not np.isfinite(scores).all():
        raise ValueError("Cannot calibrate NaN or infinite scores")
    qualities = np.zeros((len(labels), 0)) if durations is None else pair_log_durations(durations).numpy()
    weights = np.where(labels, prior / len(positives), (1 - prior) / len(negatives)) * len(labels)
    coefficients, offset = _weighted_logistic_regression(np.hstack([scores, qualities]), labels, weights)
    if coefficients[0] <= 0:
        coefficients, offset = _weighted_logistic_regression(qualities, labels, weights)
        coefficients = np.concatenate([[0.0], coefficients])
    offset -= logit(prior)
    if durations is None:
        return ScoreToLLR(float(coefficients[0]), offset, prior)
    return ScoreToLLR(float(coefficients[0]), offset, prior, tuple(float(w) for w in coefficients[1:]),
                      (float(qualities.min()), float(qualities.max())))


def _weighted_logistic_regression(features, labels, weights):
    """(coefficients (d,), intercept) of the weighted logistic regression of
    ``labels`` (n,) on ``features`` (n, d), d >= 0, each feature standardised
    for the ridge penalty and the result given in the features' own units."""
    if features.shape[1] == 0:  # the intercept alone: the weighted log odds of a target
        return np.zeros(0), float(np.log(weights[labels].sum() / weights[~labels].sum()))
    mean, scale = features.mean(axis=0), features.std(axis=0)
    scale[scale == 0] = 1.0  # a constant measure (all durations equal): its weight stays 0
    model = LogisticRegression(C=RIDGE_C, tol=1e-10, max_iter=10_000)
    model.fit((features - mean) / scale, labels, sample_weight=weights)
    coefficients = model.coef_[0] / scale
    return coefficients, float(model.intercept_[0] - coefficients @ mean)


def open_set_posteriors(llrs, p_unknown):
    """Posteriors (n + 1,) that a recording is each of n enrolled speakers or
    none of them ("unknown", last), from its LLRs (n,) against each speaker,
    at the prior ``p_unknown`` of an unknown speaker, the rest shared equally
    by the enrolled ones: P(i) is proportional to (1 - p_unknown) / n * exp(llr_i)
    and P(unknown) to p_unknown (each LLR compares "speaker i" with "someone
    else", taken as "none of them", as in open-set identification by LLRs).

    >>> open_set_posteriors(torch.tensor([0.0, 0.0]), p_unknown=0.5).tolist()
    [0.25, 0.25, 0.5]
    """
    p_unknown = checked_number(p_unknown, "identify: p_unknown", (int, float), *PRIOR_RANGE)
    llrs = torch.as_tensor(llrs, dtype=torch.float64)
    unknown = torch.tensor([math.log(p_unknown)], dtype=torch.float64)
    return torch.softmax(torch.cat([llrs + math.log((1 - p_unknown) / len(llrs)), unknown]), dim=0)


@dataclass(frozen=True)
class Calibration:
    """A model's calibration (``threshold.json``): its EER threshold, the map
    of its scores to LLRs, and what they were measured on and for.

    Arguments
    ---------
    threshold : float
        The EER threshold of the scores on ``calibrated_on``: without ``llr``
        (or with ``threshold=`` in the interface) scores above it are accepted.
    crop, crop_frames, num_crops : bool, int, int
        Whether scores come from ``num_crops`` crops of ``crop_frames`` frames
        per file (the paper's evaluation) instead of whole files.
    score_norm, as_norm_top_n : str or None, int or None
        Score normalisation ("s-norm", "as-norm" over the top N cohort scores).
    calibrated_on : str or None
        The trial list the threshold and the LLR map were measured on.
    eer : float or None
        The EER (percent) on that list.
    on_evaluation_list : bool
        The list was the evaluation list itself (no dev list): decisions on
        new trials will be less accurate than its EER says.
    calibrated_at : str or None
        ISO date of the calibration.
    min_dcf : float or None
        The minimum DCF at ``p_target`` on that list.
    p_target : float or None
        The prior of a same-speaker trial that decisions use unless given another.
    llr : ScoreToLLR or None
        The map from score to log-likelihood ratio (None: a calibration written
        before LLRs, which decides at its EER threshold).

    >>> calibration = Calibration(0.4, p_target=0.05, llr=ScoreToLLR(10.0, -4.0))
    >>> calibration.holds_for(crop=False, score_norm=None), calibration.llrs([0.5]).tolist()
    (True, [1.0])
    """

    threshold: float
    crop: bool = False
    crop_frames: int = SETTINGS["crop_frames"][0]
    num_crops: int = SETTINGS["num_crops"][0]
    score_norm: str = None
    as_norm_top_n: int = None
    calibrated_on: str = None
    eer: float = None
    on_evaluation_list: bool = False
    calibrated_at: str = None
    min_dcf: float = None
    p_target: float = None
    llr: ScoreToLLR = None

    def __post_init__(self):
        where = "calibration"
        checked_number(self.threshold, f"{where}: threshold")
        for key in ("crop", "on_evaluation_list"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"{where}: {key} must be true or false, got {getattr(self, key)!r:.60}")
        for key in ("crop_frames", "num_crops", "as_norm_top_n"):
            if getattr(self, key) is not None:
                checked_setting(asdict(self), key, where)
        if self.score_norm not in SCORE_NORMS:
            raise ValueError(f"{where}: score_norm must be one of {SCORE_NORMS}, got {self.score_norm!r:.60}")
        if self.eer is not None:
            checked_number(self.eer, f"{where}: EER", (int, float), 0, 100)
        if self.min_dcf is not None:
            checked_number(self.min_dcf, f"{where}: minDCF", (int, float), 0, 1)
        if self.p_target is not None:
            checked_number(self.p_target, f"{where}: p_target", (int, float), *PRIOR_RANGE)
        if self.llr is not None and not isinstance(self.llr, ScoreToLLR):
            raise ValueError(f"{where}: llr must be a ScoreToLLR, got {type(self.llr).__name__}")
        if self.llr is not None and self.p_target is None:
            raise ValueError(f"{where}: llr needs the p_target that decisions default to")
        for key in ("calibrated_on", "calibrated_at"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or len(value) > 4096):
                raise ValueError(f"{where}: {key} must be a string, got {value!r:.60}")
        low, high = self.threshold_range
        if not low <= self.threshold <= high:
            raise ValueError(f"{where}: threshold {self.threshold} is outside [{low}, {high}], the range of a "
                             f"calibrated threshold for crop={self.crop}, score_norm={self.score_norm}")

    @property
    def threshold_range(self):
        """(low, high) of a meaningful threshold for this scoring."""
        if self.score_norm is not None:
            return (-math.inf, math.inf)  # normalised scores: any finite value
        if self.crop:
            return (-2.0, 0.0)  # minus a mean distance of unit vectors
        return (0.0, 1.0)  # a calibrated cosine threshold below 0 accepts nearly every pair

    def holds_for(self, crop, score_norm):
        """Whether this calibration was measured on scores of this kind."""
        return (self.crop, self.score_norm) == (bool(crop), score_norm)

    def llrs(self, scores, durations=None):
        """LLRs (n,) of scores (n,) of the scoring this holds for (see
        :class:`ScoreToLLR` for ``durations``); ValueError if it has no LLRs."""
        if self.llr is None:
            raise ValueError("This calibration has only a decision threshold (it was written before calibrated "
                             "log-likelihood ratios): run the recipe's verify.py again to fit them")
        return self.llr(scores, durations)

    def to_json(self):
        """The JSON object of ``threshold.json``."""
        return {_KEYS.get(key, key): value for key, value in asdict(self).items()}

    @classmethod
    def from_json(cls, data, where):
        """A checked Calibration from a JSON object; ValueError naming ``where`` and the key."""
        if not isinstance(data, dict) or "threshold" not in data:
            raise ValueError(f"{where}: expected a JSON object with a 'threshold'")
        names = {_KEYS.get(key, key): key for key in cls.__dataclass_fields__}
        known = {names[key]: value for key, value in data.items() if key in names}
        try:
            llr = known.get("llr")
            if llr is not None:
                if not isinstance(llr, dict) or not {"slope", "offset"} <= set(llr):
                    raise ValueError(f"calibration: llr must be an object with a slope and an offset, got {llr!r:.60}")
                fields = ScoreToLLR.__dataclass_fields__
                known["llr"] = ScoreToLLR(**{key: value for key, value in llr.items() if key in fields})
            return cls(**known)
        except ValueError as error:
            raise ValueError(f"{where}: {str(error).removeprefix('calibration: ')}") from None


def read_calibration(path):
    """The :class:`Calibration` in ``path`` (a threshold.json), checked."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_CALIBRATION_FILE_BYTES:
        raise ValueError(f"{path}: {size:,} bytes, too large for a threshold file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ValueError(f"{path} is not a JSON threshold file: {type(error).__name__}: {error}") from error
    return Calibration.from_json(data, path)


def write_calibration(path, calibration):
    """Write ``calibration`` to ``path`` (a threshold.json), atomically,
    replacing only a file that reads as a calibration."""
    write_text_atomically(path, json.dumps(calibration.to_json(), indent=2) + "\n", CALIBRATION)


#: What :func:`write_calibration` may replace: a file :func:`read_calibration` reads.
CALIBRATION = Replaceable("a decision threshold file (threshold.json)", readable_by(read_calibration))
