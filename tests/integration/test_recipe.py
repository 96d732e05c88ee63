"""The VoxCeleb recipe end to end: train.py and verify.py as a user runs them."""
import collections
import json
import os
import signal
import subprocess
import sys
import time
import types

import pytest
import soundfile as sf
import torch
import yaml
from helpers import (
    RECIPE,
    TINY,
    TRANSFORMS,
    check_configured_augmenter,
    check_forced_transform,
    recipe_brain,
    run_script,
    step_gradients,
    train_log_lines,
)
from hyperpyyaml import load_hyperpyyaml

from speechbrain_tdy.dataio.audio import read_segment
from speechbrain_tdy.dataio.manifest import load_manifest
from speechbrain_tdy.nnet import TemperatureScheduler
from speechbrain_tdy.scoring.metrics import bayes_threshold, error_rates

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
    # with a warm-up, so that the learning rate changes at every step (quietly)
    result = run_script("train.py", f"hparams/{hparams}", tiny_overrides(tiny_corpus, tmp_path, hparams, lr_warmup_epochs=1))
    (log,) = train_log_lines(tmp_path)
    assert "epoch: 1" in log and "valid speaker-classification error: " in log and "valid EER" in log
    assert "train samples_per_s" in log
    output = result.stdout + result.stderr
    for spurious in ("cannot save figures", "Changing lr", "expect_len was never called", "CategoricalEncoder is not empty"):
        assert spurious not in output, spurious
    checkpoints = list((tmp_path / "save").glob("CKPT+*"))
    assert len(checkpoints) == 1
    assert {p.name for p in checkpoints[0].iterdir()} >= {"embedding_model.ckpt", "loss_head.ckpt", "temperature.ckpt"}


@pytest.mark.parametrize("hparams", [h for h in HPARAMS if "resnet" in h])
@pytest.mark.parametrize("zero_init", [False, True])
def test_zero_init_residual_setting_reaches_the_model(hparams, zero_init, tmp_path):
    overrides = {"data_folder": str(tmp_path), "output_folder": str(tmp_path), "n_mels": 24,
                 "zero_init_residual": zero_init}
    with open(RECIPE / "hparams" / hparams) as file:
        model = load_hyperpyyaml(file, overrides)["embedding_model"]
    assert bool((model.layer1[0].bn2.weight == float(not zero_init)).all())


def test_aam_loss_and_bf16_precision_with_augmentation(tiny_corpus, tmp_path):
    overrides = tiny_overrides(tiny_corpus, tmp_path, loss="aam")
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml", overrides, extra_args=["--precision=bf16"])
    assert "epoch: 1" in train_log_lines(tmp_path)[0]


@pytest.fixture(scope="module")
def bf16_brain(tiny_corpus, tmp_path_factory):
    """The recipe's Brain training under CPU bf16 autocast, and a batch."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield recipe_brain(monkeypatch, tiny_corpus, tmp_path_factory.mktemp("bf16"), "--precision=bf16")


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_bf16_training_step_augments_in_float32(transform, bf16_brain):
    """Under autocast, DropFreq and SpeedPerturb would hand on bf16 waveforms (on
    a GPU, SpeedPerturb then fails on the CPU): the recipe augments in float32."""
    brain, batch = bf16_brain
    assert brain.precision == "bf16"
    check_forced_transform(brain, batch, transform)


def test_the_recipe_trains_the_attention_without_its_input_gradient(bf16_brain, tiny_corpus, tmp_path, monkeypatch):
    from speechbrain_tdy.nnet.tdy_conv import tdy_layers

    layers = tdy_layers(bf16_brain[0].modules.embedding_model)
    assert layers and not any(layer.attention_input_grad for layer in layers)  # attention_input_grad: False
    brain, _ = recipe_brain(monkeypatch, tiny_corpus, tmp_path, attention_input_grad=True)  # the authors' training
    assert all(layer.attention_input_grad for layer in tdy_layers(brain.modules.embedding_model))


def test_compile_option_trains_the_embedding_model_as_one_graph(tiny_corpus, tmp_path, monkeypatch):
    """`--compile` (SpeechBrain's run option) compiles what the hparams files'
    compile_module_keys name, the embedding model; steps at falling temperatures
    reuse one graph, evaluation runs eagerly (no graph per utterance length), and
    checkpoints keep the eager model's keys. Dynamo's eager backend stands in for
    TorchInductor (minutes of C++ compilation on a CPU)."""
    from speechbrain import Stage
    from torch._dynamo.eval_frame import OptimizedModule
    from torch._dynamo.utils import counters

    from speechbrain_tdy.nnet.tdy_conv import tdy_layers

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda module, **options: real_compile(module, backend="eager"))
    torch._dynamo.reset()
    counters.clear()
    brain, batch = recipe_brain(monkeypatch, tiny_corpus, tmp_path, "--compile", augment=False)
    assert isinstance(brain.modules.embedding_model, OptimizedModule)
    assert not isinstance(brain.modules.compute_features, OptimizedModule)
    temperatures = []
    for brain.step in (1, 2, 3):
        brain.on_fit_batch_start(batch, True)
        assert torch.isfinite(brain.fit_batch(batch))
        temperatures.append(tdy_layers(brain.modules.embedding_model)[0].temperature)
    assert temperatures[0] > temperatures[1] > temperatures[2]
    brain.modules.eval()
    with torch.no_grad():
        brain.compute_forward(batch, Stage.VALID)
    assert counters["stats"]["unique_graphs"] == 1
    brain.checkpointer.save_checkpoint()
    saved = torch.load(next((tmp_path / "save").glob("CKPT+*/embedding_model.ckpt")), weights_only=True)
    assert saved.keys() == brain.modules.embedding_model._orig_mod.state_dict().keys()
    torch._dynamo.reset()


def test_bf16_training_steps_with_the_configured_augmenter(bf16_brain):
    check_configured_augmenter(*bf16_brain, steps=4)


def test_label_encoder_is_written_once_and_a_folder_of_other_speakers_is_refused(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(RECIPE))
    import train
    from voxceleb_prepare import prepare_voxceleb

    prepare_voxceleb(tiny_corpus, tmp_path, verification_pairs_file=[tiny_corpus / "veri_test.txt"], split_ratio=[90, 10])
    hparams = {"train_annotation": tmp_path / "train.csv", "valid_annotation": tmp_path / "dev.csv", "seed": 1,
               "crop_samples": 16240, "sample_rate": 16000, "save_folder": tmp_path, "valid_crop_frames": None}
    _, _, encoder = train.dataio_prep(hparams)
    speakers = sorted({row["spk_id"] for row in load_manifest(tmp_path / "train.csv").values()})
    assert [encoder.ind2lab[i] for i in range(len(encoder))] == speakers
    written = (tmp_path / "label_encoder.txt").read_text()
    _, _, again = train.dataio_prep(hparams)  # a resumed run reads the same mapping
    assert again.lab2ind == encoder.lab2ind and (tmp_path / "label_encoder.txt").read_text() == written

    (tmp_path / "label_encoder.txt").write_text(written.replace(speakers[0], "id99999"))
    with pytest.raises(ValueError, match="label_encoder.txt holds other speakers than the training list"):
        train.dataio_prep(hparams)


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


def steps_per_epoch(output_folder):
    """Training batches per epoch of a TINY run (2 speakers x 2 utterances per batch)."""
    per_speaker = collections.Counter(row["spk_id"] for row in load_manifest(output_folder / "save" / "train.csv").values())
    return sum(count // 2 for count in per_speaker.values()) // 2


def end_of_epoch_temperatures(n_epochs, steps):
    """(epoch, temperature of its last step) of the default schedule, as the train log writes them."""
    return [(epoch, float(f"{TemperatureScheduler().at(epoch, steps - 1, steps):.2f}")) for epoch in range(1, n_epochs + 1)]


def test_resumed_run_continues_the_temperature_and_learning_rate_schedules(tiny_corpus, tmp_path):
    script_args = tiny_overrides(tiny_corpus, tmp_path, augment=False, lr=0.002, lr_decay=0.5, lr_decay_every=2,
                                 lr_warmup_epochs=2)
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml", script_args)
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml", dict(script_args, number_of_epochs=3))
    lines = train_log_lines(tmp_path)
    steps = steps_per_epoch(tmp_path)
    assert steps >= 4
    # annealed at every step: 31 - 3 (steps - 1) / steps at the end of epoch 1, and so on
    assert [epoch_and("temperature", line) for line in lines] == end_of_epoch_temperatures(3, steps)
    # the last steps of: half the warm-up, the end of the warm-up, the first decayed epoch
    assert [epoch_and("lr", line) for line in lines] == [(1, 0.001), (2, 0.002), (3, 0.001)]


def test_grad_accumulation_keeps_the_whole_batch_loss_and_gradients(tiny_corpus, tmp_path, monkeypatch):
    """Micro-batches change the batch-norm statistics only: with batch norm on
    its running statistics (eval mode), loss and gradients are the whole batch's."""
    brain, batch = recipe_brain(monkeypatch, tiny_corpus, tmp_path, augment=False, batch_speakers=3)
    brain.modules.eval()
    losses, grads = {}, {}
    for factor in (1, 4):  # 6 waveforms; 4 micro-batches of 2, 2, 1, 1
        losses[factor], grads[factor] = step_gradients(brain, batch, factor)
    assert len(grads[1]) == len(list(brain.modules.parameters())) and grads[4].keys() == grads[1].keys()
    torch.testing.assert_close(losses[4], losses[1])
    scale = max(grad.abs().max() for grad in grads[1].values())  # float32 summation-order noise: up to ~3e-6 of it
    for name, expected in grads[1].items():
        torch.testing.assert_close(grads[4][name], expected, rtol=1e-4, atol=1e-5 * scale, msg=name)

    # In training mode each micro-batch updates the running statistics once.
    brain.modules.train()
    bn = next(m for m in brain.modules.embedding_model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    tracked = bn.num_batches_tracked.item()
    brain.grad_accumulation_factor = 3
    brain.fit_batch(batch)
    assert bn.num_batches_tracked.item() == tracked + 3
    brain.grad_accumulation_factor = 7
    with pytest.raises(ValueError, match="grad_accumulation_factor=7 is larger than the batch"):
        brain.fit_batch(batch)


def test_run_with_grad_accumulation_resumes(tiny_corpus, tmp_path):
    overrides = tiny_overrides(tiny_corpus, tmp_path, batch_speakers=3, eer_every_n_epochs=0)
    args = ["--grad_accumulation_factor=2"]
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml", overrides, extra_args=args)
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml", dict(overrides, number_of_epochs=2), extra_args=args)
    lines = train_log_lines(tmp_path)
    (epoch_1, first), (epoch_2, second) = [epoch_and("temperature", line) for line in lines]
    assert (epoch_1, epoch_2) == (1, 2) and first < 31.0 and second == pytest.approx(first - 3.0)  # one epoch on
    assert not any("valid EER" in line for line in lines)  # eer_every_n_epochs: 0, not even at the last epoch


def test_every_training_step_sets_its_own_temperature_and_learning_rate(monkeypatch):
    monkeypatch.syspath_prepend(str(RECIPE))
    import train

    from speechbrain_tdy.nnet import TDYConv2d

    layer = TDYConv2d(2, 2, 3, freq_size=4)
    hparams = types.SimpleNamespace(temperature_scheduler=TemperatureScheduler(), lr=1.0, lr_decay=0.5,
                                    lr_decay_every=5, lr_warmup_epochs=4)
    brain = types.SimpleNamespace(hparams=hparams, modules=types.SimpleNamespace(embedding_model=layer),
                                  optimizer=torch.optim.Adam(layer.parameters()), epoch_meta={"epoch": 2},
                                  steps_per_epoch=10, frozen_stages=[])
    temperatures, rates = [], []
    for brain.step in range(1, 11):  # Brain counts the batches of an epoch from 1
        train.SpeakerBrain.on_fit_batch_start(brain, batch=None, should_step=True)
        temperatures.append(layer.temperature)
        rates.append(brain.optimizer.param_groups[0]["lr"])
    assert temperatures == pytest.approx([28.0 - 0.3 * i for i in range(10)])
    assert rates == pytest.approx([(11 + i) / 40 for i in range(10)])  # steps 11..20 of a 40-step warm-up
    assert brain.epoch_meta["lr"] == rates[-1]


@pytest.mark.parametrize("warmup, expected", [(0, [4, 4, 2, 2, 1]), (1, [4, 4, 2, 2, 1]), (2, [2, 4, 2, 2, 1]),
                                              (4, [1, 2, 1.5, 2, 1])])
def test_learning_rate_warms_up_linearly_then_decays_in_steps(warmup, expected, monkeypatch):
    monkeypatch.syspath_prepend(str(RECIPE))
    import train

    # the first step of each epoch, 1 step per epoch: the warm-up ends with epoch `warmup`
    got = [train.learning_rate(epoch, 4.0, 0.5, 2, warmup) for epoch in range(1, 6)]
    assert got == pytest.approx(expected)
    steps = [train.learning_rate(1, 4.0, 0.5, 2, 1, step, 8) for step in range(8)]
    assert steps == pytest.approx([0.5 * (i + 1) for i in range(8)])


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
    lines = train_log_lines(tmp_path)
    assert [epoch_and("temperature", line) for line in lines] == end_of_epoch_temperatures(2, steps_per_epoch(tmp_path))


def test_two_process_ddp_run_with_gloo_and_micro_batches(tiny_corpus, tmp_path):
    """Micro-batching under DDP: one gradient all-reduce per batch (no_sync before)."""
    launcher = (sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517")
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml", tiny_overrides(tiny_corpus, tmp_path, augment=False),
               extra_args=["--distributed_backend=gloo", "--grad_accumulation_factor=2"], launcher=launcher)
    assert len(train_log_lines(tmp_path)) == 1
    assert len(list((tmp_path / "save").glob("CKPT+*"))) == 1


def test_verify_writes_scores_results_and_det_curve(tiny_corpus, tmp_path):
    train = tmp_path / "train"
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml",
               tiny_overrides(tiny_corpus, train, number_of_epochs=4, temperature_step=10, augment=False))
    result = run_script("verify.py", "hparams/verification.yaml", {
        "train_output_folder": train, "data_folder": tiny_corpus, "dev_verification_file": tiny_corpus / "veri_dev.txt",
    })
    # the only checkpoint trained at temperature 1 (31, 21, 11, 1 at the starts of the epochs) is scored
    assert "epoch 4, trained at temperature 1 (scored at 1), dev speaker-classification error" in result.stdout
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
    from speechbrain_tdy.storage.run_folder import load_training_run

    train = tmp_path / "train"
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml", tiny_overrides(tiny_corpus, train, augment=False))
    short_trials = trials_with_a_short_file(tiny_corpus, tmp_path / "short_trials")
    run_script("verify.py", "hparams/verification.yaml", {
        "train_output_folder": train, "data_folder": tiny_corpus, "verification_file": short_trials,
        "trial_wav_folder": short_trials.parent, "output_folder": tmp_path / "short_scores",
    })
    run_script("verify.py", "hparams/verification.yaml", {
        "train_output_folder": train, "data_folder": tiny_corpus, "dev_verification_file": tiny_corpus / "veri_dev.txt",
        "score_norm": "s-norm", "cohort_size": 12,
    })
    out = tmp_path / "exported"
    subprocess.run([sys.executable, "-m", "speechbrain_tdy.export", str(train), str(out)], check=True)
    assert {p.name for p in out.iterdir()} == {
        "hyperparams.yaml", "embedding_model.safetensors", "threshold.json", "cohort_embeddings.safetensors",
        "label_encoder.txt",
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
    # verify.py calibrated its threshold on the scores the interface gives: the same for every trial,
    # also for a file shorter than min_duration (wrap-padded), with or without s-norm
    for scores, wav_folder, options in ((train / "verification" / "scores.txt", tiny_corpus / "wav", {}),
                                        (tmp_path / "short_scores" / "scores.txt", short_trials.parent,
                                         {"score_norm": None, "threshold": 0.0})):
        for line, score in zip(scores.read_text().splitlines(), interface_scores(model, scores, wav_folder, options)):
            assert score == pytest.approx(float(line.split()[3]), abs=1e-4), line
    trial = (tiny_corpus / "veri_test.txt").read_text().split("\n")[0].split()
    llr, decision = model.verify_files(*(str(tiny_corpus / "wav" / path) for path in trial[1:]))
    assert bool(decision) == bool(llr > bayes_threshold(calibration["p_target"]))


def trials_with_a_short_file(corpus, folder):
    """A trial list in ``folder`` (copies of three test files, one cut to 0.6 s) and its path."""
    enrol, test = (corpus / "veri_test.txt").read_text().splitlines()[0].split()[1:]
    folder.mkdir()
    wavs = {"enrol.wav": read_segment(str(corpus / "wav" / enrol)), "test.wav": read_segment(str(corpus / "wav" / test))}
    wavs["short.wav"] = wavs["test.wav"][:9600]
    for name, wav in wavs.items():
        sf.write(folder / name, wav.numpy(), 16000)
    trials = folder / "trials.txt"
    trials.write_text("1 enrol.wav test.wav\n0 enrol.wav short.wav\n1 short.wav test.wav\n")
    return trials


def interface_scores(model, scores_file, wav_folder, options):
    """``model.verify_files`` scores of the trials of a verify.py ``scores.txt``,
    with verify.py's one thread (other thread counts round differently, which
    s-norm magnifies)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [float(model.verify_files(*(str(wav_folder / path) for path in line.split()[:2]), return_score=True,
                                         **options)[0])
                for line in scores_file.read_text().splitlines()]
    finally:
        torch.set_num_threads(threads)


def test_export_of_a_run_without_checkpoint_is_refused(tiny_corpus, tmp_path):
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml", tiny_overrides(tiny_corpus, tmp_path, number_of_epochs=0))
    result = subprocess.run([sys.executable, "-m", "speechbrain_tdy.export", str(tmp_path), str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "No checkpoint in" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def _csv_wavs(*csvs):
    return {"/".join(row["wav"].split("/")[-3:]) for path in csvs for row in load_manifest(path).values()}


def test_closed_set_run_trains_on_trial_speakers_but_not_on_trial_files(tiny_corpus, tmp_path):
    test_speakers = {line.split()[1].split("/")[0] for line in (tiny_corpus / "veri_test.txt").read_text().splitlines()}
    files = {s: sorted(str(p.relative_to(tiny_corpus / "wav")) for p in (tiny_corpus / "wav" / s).rglob("*.wav"))
             for s in test_speakers}
    closed = tmp_path / "closed_trials.txt"  # 2 of the 8 recordings of each test speaker
    a, b = sorted(test_speakers)
    closed.write_text(f"1 {files[a][0]} {files[a][1]}\n0 {files[a][0]} {files[b][0]}\n1 {files[b][0]} {files[b][1]}\n")
    run = tmp_path / "run"
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml", tiny_overrides(
        tiny_corpus, run, verification_file=closed, exclude_trial_speakers=False, augment=False))
    trained = _csv_wavs(run / "save" / "train.csv", run / "save" / "dev.csv")
    scored = {p for line in closed.read_text().splitlines() for p in line.split()[1:]}
    scored |= {p for line in (tiny_corpus / "veri_dev.txt").read_text().splitlines() for p in line.split()[1:]}
    assert not trained & scored
    assert {p for s in test_speakers for p in files[s][2:]} <= trained  # the test speakers' other recordings
    result = run_script("verify.py", "hparams/verification.yaml",
                        {"train_output_folder": run, "data_folder": tiny_corpus, "verification_file": closed})
    assert json.loads(result.stdout.strip().splitlines()[-1])["n_trials"] == 3


def test_verify_refuses_a_list_whose_files_were_trained_on(tiny_corpus, tmp_path):
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml",
               tiny_overrides(tiny_corpus, tmp_path, verification_file="null", dev_verification_file="null",
                              number_of_epochs=0))
    assert _csv_wavs(tmp_path / "save" / "train.csv") & {
        p for line in (tiny_corpus / "veri_test.txt").read_text().splitlines() for p in line.split()[1:]}
    result = run_script("verify.py", "hparams/verification.yaml",
                        {"train_output_folder": tmp_path, "data_folder": tiny_corpus, "allow_untrained": True},
                        check=False)
    assert result.returncode != 0
    assert "of the files that" in result.stderr and "veri_test.txt scores" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: ") and "Traceback" not in result.stderr
    assert not (tmp_path / "verification" / "results.json").exists()


def test_train_stops_on_a_bad_trial_line_with_its_place_and_no_traceback(tiny_corpus, tmp_path):
    trials = tmp_path / "trials.txt"
    trials.write_text("1 id00001/a/1.wav\n")
    result = run_script("train.py", "hparams/tdy_resnet34_quarter.yaml",
                        tiny_overrides(tiny_corpus, tmp_path / "run", verification_file=trials), check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(f"error: {trials}:1") and "Traceback" not in result.stderr
