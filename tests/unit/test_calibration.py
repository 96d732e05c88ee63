"""The typed calibration (threshold.json): one reader and writer, every value checked."""
import json

import pytest

from speechbrain_tdy.scoring.calibration import Calibration, read_calibration, write_calibration

#: What verify.py wrote before the calibration had a type.
OLD_FILES = [
    {"threshold": 0.61, "calibrated_on": "veri_dev.txt", "EER": 3.2, "crop": False, "crop_frames": 400,
     "num_crops": 10, "score_norm": None, "as_norm_top_n": None},
    {"threshold": -0.9, "calibrated_on": "veri_test.txt", "EER": 4.0, "on_evaluation_list": True, "crop": True,
     "crop_frames": 200, "num_crops": 5, "score_norm": None, "as_norm_top_n": None},
    {"threshold": 2.5, "score_norm": "as-norm", "as_norm_top_n": 50},
    {"threshold": 0.5},
]


@pytest.mark.parametrize("data", OLD_FILES)
def test_files_of_earlier_versions_load_as_they_are(data, tmp_path):
    path = tmp_path / "threshold.json"
    path.write_text(json.dumps(data))
    calibration = read_calibration(path)
    assert calibration.threshold == data["threshold"]
    assert calibration.crop == data.get("crop", False) and calibration.score_norm == data.get("score_norm")
    assert calibration.eer == data.get("EER")


def test_written_and_read_back_it_is_the_same(tmp_path):
    calibration = Calibration(threshold=-0.7, crop=True, crop_frames=300, num_crops=4, calibrated_on="dev.txt",
                              eer=2.5, calibrated_at="2026-12-04")
    write_calibration(tmp_path / "threshold.json", calibration)
    assert read_calibration(tmp_path / "threshold.json") == calibration
    assert json.loads((tmp_path / "threshold.json").read_text())["EER"] == 2.5  # the file's key, as before


@pytest.mark.parametrize("data, message", [
    ({"threshold": 10 ** 400}, r"threshold must be a finite number, got a 401-digit number"),
    ({"threshold": float("nan")}, r"threshold must be a finite number"),
    ({"threshold": "0.5"}, r"threshold must be a finite number, got '0.5'"),
    ({"threshold": 1.5}, r"threshold 1.5 is outside \[0.0, 1.0\]"),
    ({"threshold": 0.5, "crop": "yes"}, r"crop must be true or false"),
    ({"threshold": 0.5, "num_crops": 10 ** 9}, r"num_crops must be an integer in \[1, 100\]"),
    ({"threshold": 0.5, "score_norm": "z-norm"}, r"score_norm must be one of"),
    ({"threshold": 0.5, "EER": 200}, r"EER must be a finite number in \[0, 100\]"),
    ([0.5], r"expected a JSON object with a 'threshold'"),
])
def test_bad_values_are_named_with_the_file_and_key(data, message, tmp_path):
    path = tmp_path / "threshold.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"{path}: .*{message}"):
        read_calibration(path)
