"""The VoxCeleb recipe end to end: train.py and verify.py as a user runs them."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from speechbrain_tdy.dataio.audio import read_segment
from speechbrain_tdy.verification import error_rates

from recipe_utils import RECIPE, TINY, run_script, train_log_lines

HPARAMS = ["tdy.yaml", "tdy_resnet34_quarter.yaml", "resnet34_half.yaml", "dtdy_resnet34_half.yaml", "tdy_vggm.yaml"]


def tiny_overrides(corpus, output, hparams="tdy_resnet34_quarter.yaml", **extra):
    overrides = dict(TINY, data_folder=corpus, output_folder=output, dev_verification_file=corpus / "veri_dev.txt")
    if "vggm" in hparams:  # VGG-M is built for 64 mels and has no channel list
        overrides.update(n_mels=64)
        del overrides["channels"]
    overrides.update(extra)
    return overrides


@pytest.mark.parametrize("hparams", HPARAMS)
def test_one_short_epoch_for_every_hparams_file(hparams, tiny_corpus, tmp_path):
    run_script("train.py", f"hparams/{hparams}", tiny_overrides(tiny_corpus, tmp_path, hparams))
    (log,) = train_log_lines(tmp_path)
    assert "epoch: 1" in log and "valid ErrorRate" in log and "valid EER" in log
    checkpoints = list((tmp_path / "save").glob("CKPT+*"))
    assert len(checkpoints) == 1
    assert {p.name for p in checkpoints[0].iterdir()} >= {"embedding_model.ckpt", "loss_head.ckpt", "temperature.ckpt"}


def test_aam_loss_and_bf16_precision(tiny_corpus, tmp_path):
    overrides = tiny_overrides(tiny_corpus, tmp_path, loss="aam", augment=False)
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml", overrides, extra_args=["--precision=bf16"])
    assert "epoch: 1" in train_log_lines(tmp_path)[0]


def test_validation_set_is_sorted_by_duration_and_centre_cropped(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(RECIPE))
    import train
    from voxceleb_prepare import prepare_voxceleb

    trial_lists = [tiny_corpus / "veri_test.txt", tiny_corpus / "veri_dev.txt"]
    prepare_voxceleb(tiny_corpus, tmp_path, verification_pairs_file=trial_lists, split_ratio=[50, 50])
    crop_frames = 100  # 1.015 s, shorter than every utterance of the tiny corpus (1.2 to 2 s)
    hparams = {"train_annotation": tmp_path / "train.csv", "valid_annotation": tmp_path / "dev.csv", "seed": 1,
               "crop_samples": 16240, "sample_rate": 16000, "save_folder": tmp_path, "valid_crop_frames": crop_frames}
    _, valid_data, _ = train.dataio_prep(hparams)
    rows = [valid_data.data[key] for key in valid_data.data_ids]
    assert len(rows) > 2
    assert [row["duration"] for row in rows] == sorted(row["duration"] for row in rows)
    for row, item in zip(rows, valid_data):
        whole = read_segment(row["wav"], row["start"], row["stop"])
        crop = item["sig"]
        assert crop.shape == (crop_frames * 160 + 240,)
        offset = (whole.shape[0] - crop.shape[0]) // 2
        assert torch.equal(crop, whole[offset:offset + crop.shape[0]])


def epoch_and(field, line):
    """(epoch, value of ``field``) from a train_log line: "epoch: 2, lr: 1.00e-03, ... - train loss: ..."."""
    fields = dict(part.split(": ") for part in line.split(" - ")[0].split(", "))
    return int(fields["epoch"]), float(fields[field])


def test_resumed_run_continues_the_epoch_temperature_and_learning_rate_schedules(tiny_corpus, tmp_path):
    script_args = tiny_overrides(tiny_corpus, tmp_path, augment=False, lr=0.002, lr_decay=0.5, lr_decay_every=2,
                                 lr_warmup_epochs=1)
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml", script_args)
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml", dict(script_args, number_of_epochs=3))
    lines = train_log_lines(tmp_path)
    assert [epoch_and("temperature", line) for line in lines] == [(1, 31.0), (2, 28.0), (3, 25.0)]
    # warm-up, full, decayed
    assert [epoch_and("lr", line) for line in lines] == [(1, 0.001), (2, 0.002), (3, 0.001)]


@pytest.mark.parametrize("warmup, expected", [(0, [4, 4, 2, 2, 1]), (1, [2, 4, 2, 2, 1]), (3, [1, 2, 1.5, 2, 1])])
def test_learning_rate_warms_up_linearly_then_decays_in_steps(warmup, expected, monkeypatch):
    monkeypatch.syspath_prepend(str(RECIPE))
    import train

    got = [train.learning_rate(epoch, 4.0, 0.5, 2, warmup) for epoch in range(1, 6)]
    assert got == pytest.approx(expected)


def test_killed_run_resumes_from_its_intra_epoch_checkpoint(tiny_corpus, tmp_path):
    overrides = tiny_overrides(tiny_corpus, tmp_path, augment=False, number_of_epochs=2)
    args = [sys.executable, "train.py", "hparams/tdy_resnet34_quarter.yaml",
            *[f"--{k}={v}" for k, v in overrides.items()], "--ckpt_interval_steps=1"]
    process = subprocess.Popen(args, cwd=RECIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.time() + 300
    while time.time() < deadline and not any(
        yaml.safe_load(p.read_text())["end-of-epoch"] is False for p in (tmp_path / "save").glob("CKPT+*/CKPT.yaml")
    ):
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "train_log.txt").exists() or not train_log_lines(tmp_path), "killed during epoch 1"
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml", overrides)
    assert [epoch_and("temperature", line) for line in train_log_lines(tmp_path)] == [(1, 31.0), (2, 28.0)]


def test_two_process_ddp_run_with_gloo(tiny_corpus, tmp_path):
    launcher = (sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517")
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml", tiny_overrides(tiny_corpus, tmp_path, augment=False),
               extra_args=["--distributed_backend=gloo"], launcher=launcher)
    assert len(train_log_lines(tmp_path)) == 1
    assert len(list((tmp_path / "save").glob("CKPT+*"))) == 1


def test_verify_writes_scores_results_and_det_curve(tiny_corpus, tmp_path):
    train = tmp_path / "train"
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml",
               tiny_overrides(tiny_corpus, train, number_of_epochs=4, temperature_step=10, augment=False))
    result = run_script("verify.py", "hparams/verification.yaml", {
        "train_output_folder": train, "data_folder": tiny_corpus, "dev_verification_file": tiny_corpus / "veri_dev.txt",
    })
    results = json.loads((train / "verification" / "results.json").read_text())
    n_trials = len((tiny_corpus / "veri_test.txt").read_text().split("\n")) - 1
    assert results["n_trials"] == n_trials
    assert json.loads(result.stdout.strip().splitlines()[-1]) == results
    scores = [line.split() for line in (train / "verification" / "scores.txt").read_text().splitlines()]
    assert len(scores) == n_trials and {len(fields) for fields in scores} == {4}
    eer, threshold, min_dcf = error_rates(torch.tensor([float(f[3]) for f in scores]), [int(f[2]) for f in scores])
    assert results["EER"] == pytest.approx(eer, abs=1e-4) and results["minDCF"] == pytest.approx(min_dcf, abs=1e-6)
    assert (train / "verification" / "det.png").stat().st_size > 1000
    calibration = json.loads((train / "threshold.json").read_text())
    assert calibration["calibrated_on"].endswith("veri_dev.txt")


def test_verify_with_crops_and_score_normalisation(tiny_corpus, tmp_path):
    train = tmp_path / "train"
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml", tiny_overrides(tiny_corpus, train, augment=False))
    common = {"train_output_folder": train, "data_folder": tiny_corpus}
    run_script("verify.py", "hparams/verification.yaml", dict(common, crop=True, output_folder=tmp_path / "crops"))
    run_script("verify.py", "hparams/verification.yaml",
               dict(common, score_norm="as-norm", cohort_size=12, as_norm_top_n=4, output_folder=tmp_path / "asnorm"))
    for folder in ("crops", "asnorm"):
        assert json.loads((tmp_path / folder / "results.json").read_text())["n_trials"] > 0
    assert (train / "cohort_embeddings.pt").is_file()


def test_saved_hyperparams_name_the_architecture(tiny_corpus, tmp_path):
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml",
               tiny_overrides(tiny_corpus, tmp_path, number_of_epochs=0))
    text = (tmp_path / "hyperparams.yaml").read_text()
    assert "architecture: tdy_resnet34_quarter" in text
    assert "n_mels: 24" in text


def test_export_after_verify_gives_a_folder_the_interface_loads(tiny_corpus, tmp_path):
    from speechbrain_tdy.inference import TDYSpeakerRecognition
    from speechbrain_tdy.training_run import load_training_run

    train = tmp_path / "train"
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml", tiny_overrides(tiny_corpus, train, augment=False))
    run_script("verify.py", "hparams/verification.yaml", {
        "train_output_folder": train, "data_folder": tiny_corpus, "dev_verification_file": tiny_corpus / "veri_dev.txt",
        "score_norm": "s-norm", "cohort_size": 12,
    })
    out = tmp_path / "exported"
    subprocess.run([sys.executable, "-m", "speechbrain_tdy.export", str(train), str(out)], check=True)
    assert {p.name for p in out.iterdir()} == {
        "hyperparams.yaml", "embedding_model.ckpt", "threshold.json", "cohort_embeddings.pt", "label_encoder.txt",
        "README.md",
    }
    results = json.loads((train / "verification" / "results.json").read_text())
    assert f"EER {results['EER']:.2f}%" in (out / "README.md").read_text()

    model = TDYSpeakerRecognition.from_hparams(source=str(out))
    calibration = json.loads((train / "threshold.json").read_text())
    assert calibration["score_norm"] == "s-norm"
    assert model.decision_threshold(score_norm="s-norm") == calibration["threshold"]
    run = load_training_run(train)
    wavs = 0.1 * torch.randn(2, 24000)
    with torch.no_grad():
        expected = run.pipeline(wavs)
    torch.testing.assert_close(model.encode_batch(wavs)[:, 0], expected, rtol=0, atol=1e-5)
    trial = (tiny_corpus / "veri_test.txt").read_text().split("\n")[0].split()
    score, decision = model.verify_files(*(str(tiny_corpus / "wav" / path) for path in trial[1:]))
    assert bool(decision) == bool(score > calibration["threshold"])


def test_export_of_a_run_without_checkpoint_is_refused(tiny_corpus, tmp_path):
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml", tiny_overrides(tiny_corpus, tmp_path, number_of_epochs=0))
    result = subprocess.run([sys.executable, "-m", "speechbrain_tdy.export", str(tmp_path), str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "No checkpoint in" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
