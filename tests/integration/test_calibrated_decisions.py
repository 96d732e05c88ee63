"""Calibrated decisions: model folders with no, old and new threshold.json, decisions at a
prior, open-set identification from posteriors, and verify.py's calibration and report."""
import json
import math
import shutil
import warnings

import pytest
import torch
from helpers import fake_run, voice, write_voice

from speechbrain_tdy.cli.gallery import main as gallery_main
from speechbrain_tdy.dataio.audio import header_duration
from speechbrain_tdy.export.run import export
from speechbrain_tdy.inference import TDYSpeakerRecognition
from speechbrain_tdy.inference.gallery import UNKNOWN
from speechbrain_tdy.scoring.calibration import Calibration, ScoreToLLR, open_set_posteriors, read_calibration
from speechbrain_tdy.scoring.metrics import bayes_threshold, cllr, detection_cost, operating_point

# What verify.py wrote before calibrated LLRs.
OLD_THRESHOLD_FILE = {"threshold": 0.3, "calibrated_on": "/data/corpus/veri_dev.txt", "EER": 7.5, "crop": False,
                      "crop_frames": 400, "num_crops": 10, "score_norm": None, "as_norm_top_n": None}
NEW_CALIBRATION = Calibration(0.3, calibrated_on="veri_dev.txt", eer=7.5, p_target=0.05, llr=ScoreToLLR(10.0, -3.0))
NEW_THRESHOLD_FILE = json.dumps(NEW_CALIBRATION.to_json())


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two recordings of different lengths."""
    root = tmp_path_factory.mktemp("pair")
    return write_voice(root / "a.wav", 1.5, seed=1), write_voice(root / "b.wav", 2.5, seed=2)


def calibrated_folder(model_folder, tmp_path, threshold_file):
    """A copy of ``model_folder`` whose hyperparams.yaml names ``threshold_file`` (text) as threshold.json."""
    folder = shutil.copytree(model_folder, tmp_path / "calibrated")
    (folder / "threshold.json").write_text(threshold_file)
    hparams = folder / "hyperparams.yaml"
    hparams.write_text(hparams.read_text().replace("threshold_file: null", "threshold_file: threshold.json"))
    return folder


def load(folder):
    """(model, the messages of the warnings its loading gave)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = TDYSpeakerRecognition.from_hparams(source=str(folder))
    return model, [str(warning.message) for warning in caught]


def test_folders_without_with_an_old_and_with_a_new_calibration_all_load(model_folder, pair, tmp_path):
    plain, messages = load(model_folder)
    assert plain.calibration is None and any("no calibrated decision threshold" in m for m in messages)
    with pytest.raises(ValueError, match="pass threshold="):
        plain.verify_files(*pair)
    score, decision = plain.verify_files(*pair, threshold=0.5)
    assert bool(decision) == (float(score) > 0.5)

    old, messages = load(calibrated_folder(model_folder, tmp_path / "old", json.dumps(OLD_THRESHOLD_FILE)))
    assert old.calibration.llr is None and old.calibration.threshold == 0.3
    assert sum("before calibrated log-likelihood ratios" in m for m in messages) == 1  # said once, at load
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and not again at each decision
        old_score, old_decision = old.verify_files(*pair)
    assert float(old_score) == pytest.approx(float(score), abs=1e-6) and bool(old_decision) == (float(score) > 0.3)
    with pytest.raises(ValueError, match="p_target= needs a calibration with log-likelihood ratios"):
        old.verify_files(*pair, p_target=0.01)

    new, messages = load(calibrated_folder(model_folder, tmp_path / "new", NEW_THRESHOLD_FILE))
    assert new.calibration == NEW_CALIBRATION and not any("calibrat" in m for m in messages)
    llr, decision = new.verify_files(*pair)
    assert float(llr) == pytest.approx(10.0 * float(score) - 3.0, abs=1e-4)
    assert bool(decision) == (float(llr) > math.log(19))  # the calibration's p_target 0.05
    raw, _ = new.verify_files(*pair, return_score=True)
    assert float(raw) == pytest.approx(float(score), abs=1e-6)


@pytest.mark.parametrize("prior", [0.01, 0.3])
def test_the_decision_flips_at_the_bayes_threshold_of_the_prior(model_folder, pair, prior):
    model, _ = load(model_folder)
    score = float(model.verify_files(*pair, threshold=0.0)[0])
    wav_a, wav_b = torch.from_numpy(voice(1.5, 1)), torch.from_numpy(voice(1.5, 2))
    batch_score = float(model.verify_batch(wav_a, wav_b, threshold=0.0)[0][0, 0])
    at_threshold = bayes_threshold(prior)
    for margin, accepted in ((-0.05, False), (0.05, True)):
        # LLR maps that put the pair just below or just above the Bayes threshold of ``prior``: files at the
        # calibration's own prior, by default ...
        model.calibration = Calibration(0.3, p_target=prior, llr=ScoreToLLR(10.0, at_threshold + margin - 10 * score))
        llr, decision = model.verify_files(*pair)
        assert float(llr) == pytest.approx(at_threshold + margin, abs=1e-3) and bool(decision) is accepted
        assert bool(model.verify_files(*pair, p_target=0.5)[1]) is (at_threshold + margin > 0)
        # ... where a false alarm that costs exp(2 margin) times as much moves the threshold past the pair ...
        assert bool(model.verify_files(*pair, c_fa=math.exp(2 * margin))[1]) is not accepted
        # ... and waveforms at a prior given to the call
        model.calibration = Calibration(0.3, p_target=0.5,
                                        llr=ScoreToLLR(10.0, at_threshold + margin - 10 * batch_score))
        llrs, decisions = model.verify_batch(wav_a, wav_b, p_target=prior)
        assert llrs.shape == decisions.shape == (1, 1)
        assert float(llrs[0, 0]) == pytest.approx(at_threshold + margin, abs=1e-3)
        assert bool(decisions[0, 0]) is accepted
    # a score threshold overrides the decision (the LLR is still returned), and cannot be mixed with a prior
    llr, decision = model.verify_files(*pair, threshold=score - 0.01)
    assert bool(decision) and float(llr) == pytest.approx(float(model.calibration.llrs([score])[0]), abs=1e-3)
    with pytest.raises(ValueError, match="call passed threshold="):
        model.verify_files(*pair, threshold=0.5, p_target=0.05)
    with pytest.raises(ValueError, match=r"verify: p_target must be a finite number in \[1e-06, 0.999999\], got 1.5"):
        model.verify_files(*pair, p_target=1.5)


def test_verify_batch_uses_the_durations_of_both_recordings(model_folder):
    model, _ = load(model_folder)
    wavs = torch.from_numpy(voice(2.0, 1)).repeat(2, 1), torch.from_numpy(voice(2.0, 2)).repeat(2, 1)
    lens = torch.tensor([1.0, 0.5])
    scores, _ = model.verify_batch(*wavs, wav1_lens=lens, threshold=0.0)
    model.calibration = Calibration(0.3, p_target=0.05, llr=ScoreToLLR(10.0, -3.0, 0.05, (1.0, 0.5), (-5.0, 5.0)))
    llrs, _ = model.verify_batch(*wavs, wav1_lens=lens)
    expected = 10.0 * scores[:, 0] - 3.0 + torch.tensor([math.log(2.0) * 1.5, math.log(1.0) + 0.5 * math.log(2.0)])
    torch.testing.assert_close(llrs[:, 0], expected.float(), rtol=0, atol=1e-4)


def test_identify_answers_from_posteriors_at_the_prior_of_an_unknown_speaker(model_folder, tmp_path):
    folder = calibrated_folder(model_folder, tmp_path, NEW_THRESHOLD_FILE)
    model, _ = load(folder)
    files = {name: write_voice(tmp_path / f"{name}.wav", 1.5, seed) for seed, name in enumerate(("al", "bo", "cy"))}
    for name, path in files.items():
        model.enroll(name, path)
    probe = write_voice(tmp_path / "probe.wav", 2.0, seed=7)
    names_by_score, scores = model.identify(probe, top_k=3, threshold=-1.0)  # scores: as before LLRs
    llrs = dict(zip(names_by_score, (10.0 * scores - 3.0).tolist()))
    names, posteriors = model.identify(probe, top_k=4, p_unknown=0.2)
    expected = open_set_posteriors(torch.tensor([llrs[name] for name in model.gallery.names]), 0.2)
    expected = dict(zip(model.gallery.names + [UNKNOWN], expected.tolist()))
    assert sorted(names) == sorted(expected) and posteriors.tolist() == pytest.approx([expected[n] for n in names],
                                                                                        abs=1e-5)
    assert float(posteriors.sum()) == pytest.approx(1.0, abs=1e-5)
    assert model.identify(probe, p_unknown=0.999999)[0] == [UNKNOWN]
    assert model.identify(probe, p_unknown=1e-6)[0] == [names_by_score[0]]
    with pytest.raises(ValueError, match="p_unknown= needs a calibration"):
        model.identify(probe, threshold=0.5, p_unknown=0.5)


def test_the_gallery_command_decides_at_the_prior_it_is_given(model_folder, tmp_path, capsys):
    folder = calibrated_folder(model_folder, tmp_path, NEW_THRESHOLD_FILE)
    gallery = tmp_path / "gallery"
    enrolled = write_voice(tmp_path / "al.wav", 1.5, seed=0)
    gallery_main([str(folder), str(gallery), "enroll", "al", enrolled])
    capsys.readouterr()
    for p_unknown, answer in (("0.999999", UNKNOWN), ("0.000001", "al")):
        gallery_main([str(folder), str(gallery), "identify", enrolled, "--p-unknown", p_unknown, "--top-k", "2"])
        fields = capsys.readouterr().out.strip().split("\t")
        assert fields[1].split()[0] == answer and len(fields) == 3
    with pytest.raises(SystemExit) as exit_:
        gallery_main([str(folder), str(gallery), "identify", enrolled, "--p-unknown", "1.5"])
    assert "p_unknown must be a finite number in [1e-06, 0.999999], got 1.5" in str(exit_.value.code)


def test_verify_py_calibrates_on_the_dev_list_and_reports_what_calibration_costs(tiny_corpus, tmp_path):
    from helpers import run_script

    run = fake_run(tmp_path / "run")
    result = run_script("verify.py", "hparams/verification.yaml", {
        "data_folder": tiny_corpus, "train_output_folder": run, "dev_verification_file": tiny_corpus / "veri_dev.txt",
        "calibration_durations": True, "calibration_prior": 0.1,
    })
    calibration = read_calibration(run / "threshold.json")
    assert calibration.calibrated_on.endswith("veri_dev.txt") and not calibration.on_evaluation_list
    assert calibration.llr.uses_durations and calibration.llr.fit_prior == 0.1 and calibration.p_target == 0.05
    assert calibration.calibrated_at is not None and calibration.holds_for(crop=False, score_norm=None)
    results = json.loads((run / "verification" / "results.json").read_text())
    assert json.loads(result.stdout.strip().splitlines()[-1]) == results
    assert "Cllr" in result.stdout and results["calibrated_on"] == calibration.calibrated_on

    # the report is what the calibration's LLRs of scores.txt give
    lines = [line.split() for line in (run / "verification" / "scores.txt").read_text().splitlines()]
    labels = [int(fields[2]) for fields in lines]
    durations = [[header_duration(tiny_corpus / "wav" / path) for path in fields[:2]] for fields in lines]
    llrs = calibration.llrs(torch.tensor([float(fields[3]) for fields in lines]), torch.tensor(durations))
    assert results["Cllr"] == pytest.approx(cllr(llrs, labels), abs=1e-6)
    for prior in (0.01, 0.05):
        costs = results["DCF"][f"{prior:g}"]
        p_miss, p_fa = operating_point(llrs, labels, bayes_threshold(prior))
        assert (costs["P_miss"], costs["P_fa"]) == (p_miss, p_fa)
        assert costs["actual"] == pytest.approx(detection_cost(p_miss, p_fa, prior))
        assert costs["minimum"] <= costs["actual"] + 1e-12 and "at_threshold" in costs
    assert results["minCllr"] <= results["Cllr"] + 1e-9

    # exported, the model gives the same LLRs and decides at the calibration's prior
    export(run, tmp_path / "exported")
    model, messages = load(tmp_path / "exported")
    assert not any("calibrat" in m for m in messages) and model.calibration == calibration
    card = (tmp_path / "exported" / "README.md").read_text()
    assert "Calibrated log-likelihood ratios" in card and f"Cllr {results['Cllr']:.3f}" in card
    llr, decision = model.verify_files(*(str(tiny_corpus / "wav" / path) for path in lines[0][:2]))
    assert float(llr) == pytest.approx(float(llrs[0]), abs=1e-3 * max(1.0, calibration.llr.slope))
    assert bool(decision) == (float(llr) > bayes_threshold(0.05))
