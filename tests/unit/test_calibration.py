"""The typed calibration (threshold.json): one reader and writer, every value checked; the fit of
its map from score to log-likelihood ratio, Cllr and detection costs, decisions at a prior."""
import json
import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from speechbrain_tdy.scoring.calibration import (
    Calibration,
    ScoreToLLR,
    fit_score_to_llr,
    open_set_posteriors,
    read_calibration,
    write_calibration,
)
from speechbrain_tdy.scoring.metrics import (
    bayes_threshold,
    calibration_report,
    cllr,
    detection_cost,
    min_cllr,
    min_dcf,
    operating_point,
)

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


@pytest.mark.parametrize("data", OLD_FILES)
def test_files_of_earlier_versions_have_no_llrs_and_round_trip(data, tmp_path):
    path = tmp_path / "threshold.json"
    path.write_text(json.dumps(data))
    calibration = read_calibration(path)
    assert calibration.llr is None and calibration.p_target is None and calibration.min_dcf is None
    with pytest.raises(ValueError, match="before calibrated log-likelihood ratios"):
        calibration.llrs([0.5])
    write_calibration(path, calibration)
    assert read_calibration(path) == calibration


def test_a_calibration_with_llrs_round_trips_and_keeps_what_earlier_readers_need(tmp_path):
    calibration = Calibration(
        threshold=-0.65, crop=True, crop_frames=300, num_crops=5, calibrated_on="dev.txt", eer=4.5, min_dcf=0.3,
        calibrated_at="2026-12-04", p_target=0.01, llr=ScoreToLLR(11.0, -5.0, 0.01, (0.1, -0.2), (0.5, 2.5)))
    path = tmp_path / "threshold.json"
    write_calibration(path, calibration)
    assert read_calibration(path) == calibration
    data = json.loads(path.read_text())
    assert data["llr"] == {"slope": 11.0, "offset": -5.0, "fit_prior": 0.01, "duration_weights": [0.1, -0.2],
                           "log_duration_range": [0.5, 2.5]}
    assert (data["threshold"], data["crop"], data["crop_frames"], data["num_crops"]) == (-0.65, True, 300, 5)
    assert (data["minDCF"], data["p_target"]) == (0.3, 0.01)


@pytest.mark.parametrize("change, message", [
    ({"llr": [1, 2]}, r"llr must be an object with a slope and an offset"),
    ({"llr": {"slope": -1.0, "offset": 0.0}}, r"llr: slope must be a finite number in \[0.0, 1000000.0\], got -1.0"),
    ({"llr": {"slope": 1.0, "offset": "0"}}, r"llr: offset must be a finite number"),
    ({"llr": {"slope": 1.0, "offset": 0.0, "duration_weights": [1.0, 2.0]}}, "go together"),
    ({"llr": {"slope": 1.0, "offset": 0.0, "duration_weights": [1.0], "log_duration_range": [0, 1]}},
     r"llr: duration_weights must be a list of 2 numbers"),
    ({"llr": {"slope": 1.0, "offset": 0.0, "duration_weights": [1.0, 0.0], "log_duration_range": [2, 1]}},
     r"log_duration_range \[2, 1\] is empty"),
    ({"llr": {"slope": 1.0, "offset": 0.0}, "p_target": None}, "llr needs the p_target"),
    ({"p_target": 1.0}, r"p_target must be a finite number in \[1e-06, 0.999999\], got 1.0"),
    ({"minDCF": 2.0}, r"minDCF must be a finite number in \[0, 1\]"),
])
def test_bad_llr_values_are_named_with_the_file_and_key(change, message, tmp_path):
    path = tmp_path / "threshold.json"
    path.write_text(json.dumps(dict({"threshold": 0.5, "p_target": 0.05}, **change)))
    with pytest.raises(ValueError, match=f"{path}: .*{message}"):
        read_calibration(path)


# The LLR map and its fit --------------------------------------------------------------------------------------


def calibrated_gaussian_llrs(n, separation, seed=0):
    """Labels (2n,) and LLRs (2n,) that are perfectly calibrated: targets
    N(m, 2m), non-targets N(-m, 2m) with m = ``separation``."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(2 * n) % 2 == 0
    noise = math.sqrt(2 * separation) * torch.randn(2 * n, generator=generator, dtype=torch.float64)
    return labels, torch.where(labels, separation, -separation) + noise


@pytest.mark.parametrize("prior", [0.5, 0.05, 0.01])
def test_the_fit_recovers_a_known_affine_llr(prior):
    labels, llrs = calibrated_gaussian_llrs(50_000, separation=3.0)
    slope, offset = 12.0, -4.2  # a cosine-like score s = (llr - offset) / slope
    fitted = fit_score_to_llr((llrs - offset) / slope, labels, prior=prior)
    assert fitted.slope == pytest.approx(slope, rel=0.03)
    assert fitted.offset == pytest.approx(offset, rel=0.03)
    assert fitted.fit_prior == prior and not fitted.uses_durations


def test_the_fit_recovers_the_weight_of_a_duration_quality_measure():
    """Scores shifted by k log(shorter duration) in both classes: the true LLR is
    a s - a k log d_short + b, so the map needs the durations to be calibrated."""
    generator = torch.Generator().manual_seed(1)
    labels, llrs = calibrated_gaussian_llrs(40_000, separation=2.0, seed=1)
    durations = torch.exp(torch.rand(len(labels), 2, generator=generator, dtype=torch.float64) * 3)  # 1-20 s
    slope, offset, k = 10.0, -3.0, 0.1
    scores = (llrs - offset) / slope + k * durations.min(dim=1).values.log()
    fitted = fit_score_to_llr(scores, labels, prior=0.5, durations=durations)
    assert fitted.slope == pytest.approx(slope, rel=0.03)
    assert fitted.duration_weights[0] == pytest.approx(-slope * k, abs=0.05)
    assert fitted.duration_weights[1] == pytest.approx(0.0, abs=0.05)
    without_durations = fit_score_to_llr(scores, labels, prior=0.5)
    assert cllr(fitted(scores, durations), labels) < cllr(without_durations(scores), labels) - 0.01
    with pytest.raises(ValueError, match="durations of both recordings"):
        fitted(scores)


def test_llrs_clip_durations_to_the_range_they_were_fitted_on():
    llr = ScoreToLLR(10.0, -4.0, 0.5, (1.0, 0.0), (0.0, 2.0))
    inside, beyond = llr([0.5, 0.5], [[5.0, 5.0], [math.exp(2.0), 100.0]]).tolist()
    assert inside == pytest.approx(1.0 + math.log(5.0)) and beyond == pytest.approx(3.0)


def test_scores_that_rank_non_targets_first_give_the_map_of_no_information():
    labels, llrs = calibrated_gaussian_llrs(1000, separation=1.0)
    fitted = fit_score_to_llr(-llrs, labels, prior=0.05)
    assert (fitted.slope, fitted.offset) == (0.0, pytest.approx(0.0, abs=1e-9))
    assert cllr(fitted(-llrs), labels) == pytest.approx(1.0)


def test_separable_scores_give_a_finite_map():
    labels = torch.arange(200) % 2 == 0
    fitted = fit_score_to_llr(torch.where(labels, 0.8, 0.2), labels, prior=0.05)
    assert 0 < fitted.slope < 1e3 and math.isfinite(fitted.offset)


# Cllr and detection costs ----------------------------------------------------------------------------------


def test_cllr_of_perfectly_calibrated_discrete_llrs_is_the_closed_form():
    """LLRs of +-log 3 with the proportions they state (a target is at +log 3
    three times as often as at -log 3, a non-target the other way round):
    Cllr = 3/4 log2(1 + 1/3) + 1/4 log2(1 + 3), and PAV cannot improve them."""
    llr = math.log(3)
    targets, non_targets = [llr] * 300 + [-llr] * 100, [-llr] * 300 + [llr] * 100
    llrs, labels = targets + non_targets, [1] * 400 + [0] * 400
    closed_form = 0.75 * math.log2(4 / 3) + 0.25 * math.log2(4)
    assert cllr(llrs, labels) == pytest.approx(closed_form, abs=1e-12)
    assert min_cllr(llrs, labels) == pytest.approx(closed_form, abs=1e-12)


def test_cllr_of_calibrated_gaussian_llrs_is_the_integral():
    """For calibrated Gaussian LLRs, Cllr = E[log2(1 + exp(-x))], x ~ N(m, 2m)."""
    separation = 2.0
    labels, llrs = calibrated_gaussian_llrs(200_000, separation)

    def density(x):
        return math.exp(-((x - separation) ** 2) / (4 * separation)) / math.sqrt(4 * math.pi * separation)

    expected, _ = quad(lambda x: density(x) * np.logaddexp(0, -x) / math.log(2), -40, 40)
    assert cllr(llrs, labels) == pytest.approx(expected, abs=0.005)
    assert min_cllr(llrs, labels) <= cllr(llrs, labels)


def test_cllr_bounds():
    assert cllr([0.0] * 4, [1, 1, 0, 0]) == pytest.approx(1.0)
    assert min_cllr([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0]) == 0.0
    assert cllr([-20.0, 20.0], [1, 0]) > 20  # confident errors cost without bound
    with pytest.raises(ValueError, match="both target and non-target"):
        cllr([1.0, 2.0], [1, 1])


def test_bayes_threshold_and_detection_costs():
    assert bayes_threshold(0.5) == 0.0
    assert bayes_threshold(0.05) == pytest.approx(math.log(19))
    assert bayes_threshold(0.05, c_miss=19) == pytest.approx(0.0)
    assert operating_point([3.0, 1.0, 2.0, -1.0], [1, 1, 0, 0], threshold=1.5) == (0.5, 0.5)
    assert detection_cost(0.5, 0.5, p_target=0.01) == pytest.approx(0.5)
    for bad in (0.0, 1.0, float("nan"), True):
        with pytest.raises(ValueError, match="p_target must be a finite number"):
            bayes_threshold(bad)


def test_min_dcf_is_speechbrains_in_linear_memory():
    from speechbrain.utils.metric_stats import minDCF

    generator = torch.Generator().manual_seed(0)
    labels = torch.rand(500, generator=generator) < 0.3
    scores = torch.round((torch.randn(500, generator=generator) + 1.5 * labels) * 10) / 10  # with ties
    for prior in (0.01, 0.05, 0.5):
        expected = minDCF(scores[labels], scores[~labels], p_target=prior)[0]
        assert min_dcf(scores, labels, prior) == pytest.approx(expected, abs=1e-6)


def test_calibrated_decisions_cost_about_the_minimum():
    labels, llrs = calibrated_gaussian_llrs(20_000, separation=4.0)
    scores = (llrs + 2.0) / 9.0
    report = calibration_report(scores, fit_score_to_llr(scores, labels, 0.05)(scores), labels, score_threshold=0.22)
    assert report["minCllr"] <= report["Cllr"] <= report["minCllr"] + 0.01
    for prior in ("0.01", "0.05"):
        costs = report["DCF"][prior]
        assert costs["minimum"] <= costs["actual"] <= 1.1 * costs["minimum"]
        assert costs["actual"] == pytest.approx(detection_cost(costs["P_miss"], costs["P_fa"], float(prior)))
        assert costs["at_threshold"] > costs["actual"]  # the EER threshold is not the Bayes decision at 0.01, 0.05


# Open-set identification ----------------------------------------------------------------------------------


def test_open_set_posteriors():
    llrs = torch.tensor([2.0, 0.0, -1.0])
    posteriors = open_set_posteriors(llrs, p_unknown=0.2)
    weights = [0.8 / 3 * math.exp(llr) for llr in llrs.tolist()] + [0.2]
    assert posteriors.tolist() == pytest.approx([w / sum(weights) for w in weights])
    unknown = [float(open_set_posteriors(llrs, p)[-1]) for p in (0.01, 0.2, 0.5, 0.9, 0.999)]
    assert unknown == sorted(unknown) and unknown[0] < 0.01 and unknown[-1] > 0.9
    with pytest.raises(ValueError, match="p_unknown must be a finite number"):
        open_set_posteriors(llrs, p_unknown=1.0)
