"""A model's calibration: the decision threshold and the scoring it holds for.

Written by the recipe's ``verify.py`` (into the run folder), copied into a
model folder by the export, read by the pretrained interface and the model
card; this module is the one reader and writer of its file,
``threshold.json``, a JSON object::

    {"threshold": 0.43, "calibrated_on": "veri_dev.txt", "EER": 2.1,
     "on_evaluation_list": false, "calibrated_at": "2026-12-04",
     "crop": false, "crop_frames": 400, "num_crops": 10,
     "score_norm": null, "as_norm_top_n": 100}

Only ``threshold`` is required; files written by earlier versions load as
they are.
"""
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from speechbrain_tdy.scoring.scores import SCORE_NORMS
from speechbrain_tdy.storage.atomic import Replaceable, readable_by, write_text_atomically
from speechbrain_tdy.storage.checks import checked_number
from speechbrain_tdy.storage.model_files import SETTINGS, checked_setting

#: Largest threshold.json read.
MAX_CALIBRATION_FILE_BYTES = 64 * 1024
#: JSON keys of the fields whose names differ from the file's.
_KEYS = {"eer": "EER"}


@dataclass(frozen=True)
class Calibration:
    """A decision threshold and what it was calibrated on and for.

    Arguments
    ---------
    threshold : float
        Scores above it are accepted as the same speaker.
    crop, crop_frames, num_crops : bool, int, int
        Whether scores come from ``num_crops`` crops of ``crop_frames`` frames
        per file (the paper's evaluation) instead of whole files.
    score_norm, as_norm_top_n : str or None, int or None
        Score normalisation ("s-norm", "as-norm" over the top N cohort scores).
    calibrated_on : str or None
        The trial list whose EER point gave the threshold.
    eer : float or None
        The EER (percent) on that list.
    on_evaluation_list : bool
        The list was the evaluation list itself (no dev list): decisions on
        new trials will be less accurate than its EER says.
    calibrated_at : str or None
        ISO date of the calibration.
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
