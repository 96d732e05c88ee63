"""Untrusted inputs: model folders, run folders, output paths, audio headers,
threshold, cohort and trial files. Nothing may run, write outside its
folder, be deleted, hang, or fail without naming the file."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import (
    ARCH,
    RECIPE,
    RUN_HPARAMS,
    TOOLS,
    VALUES,
    as_written_before_safetensors,
    fake_run,
    run_script,
    tiny_model,
)

from speechbrain_tdy.dataio.audio import AudioError, load_audio
from speechbrain_tdy.dataio.trials import read_trials
from speechbrain_tdy.export.model_folder import write_model_folder
from speechbrain_tdy.export.run import export
from speechbrain_tdy.inference import TDYSpeakerRecognition, UnsafeHyperparamsError
from speechbrain_tdy.storage.model_files import SAVEDIR_MARKER
from speechbrain_tdy.storage.run_folder import load_training_run


def make_model_folder(path, seed=0, calibration=None):
    embedder = tiny_model(seed)
    return write_model_folder(path, ARCH, VALUES, embedder.embedding_model, embedder, "tiny model card",
                              calibration=calibration)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return make_model_folder(tmp_path_factory.mktemp("models") / "tiny")


def copy_folder(folder, tmp_path, name="model"):
    return Path(shutil.copytree(folder, tmp_path / name))


def append(folder, text):
    path = folder / "hyperparams.yaml"
    path.write_text(path.read_text() + text)


def speech(seconds=1.5, seed=0, rate=16000):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (0.1 * np.sin(2 * np.pi * 150 * t) + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


# Code in hyperparams.yaml ---------------------------------------------------------


@pytest.mark.parametrize("line", [
    "x: !new:torch.nn.functional.np.f2py.subprocess.Popen [[touch, {marker}]]",
    "x: !new:torch.nn.attention._registry.logging.io.FileIO [{marker}, w]",
    "x: !new:torch.nn.grad.torch.ctypes.CDLL [libc.so.6]",
    "x: !new:speechbrain_tdy.lobes.resnet.nn.modules.module.sys.modules",
    "x: !new:speechbrain_tdy.lobes.ResNet.__init__",
    "x: !apply:os.makedirs [{marker}]",
    "x: !name:builtins.exec",
    "x: !!python/object/apply:os.system [touch {marker}]",
    "x: !include:{marker}.yaml",
    "x: !module:os",
    "x: !copy <n_mels>",
    "x: !ref <n_mels> ** <n_mels> ** <n_mels> ** <n_mels>",
    "x: !ref <emb_dim>/{marker}",
    "%TAG !e! tag:example.com,2000:\n---\nx: 1",
])
def test_hparams_that_would_run_code_are_refused(model_folder, tmp_path, line):
    folder = copy_folder(model_folder, tmp_path)
    marker = tmp_path / "owned"
    append(folder, line.format(marker=marker) + "\n")
    start = time.monotonic()
    with pytest.raises(UnsafeHyperparamsError, match=str(folder / "hyperparams.yaml")):
        TDYSpeakerRecognition.from_hparams(source=str(folder))
    assert time.monotonic() - start < 10 and not marker.exists()


def test_a_scalar_in_parentheses_stays_a_string(model_folder, tmp_path):
    """HyperPyYAML evaluates '(...)' scalars as tuples with an unsafe loader; ours keeps the text."""
    folder = copy_folder(model_folder, tmp_path)
    marker = tmp_path / "owned"
    append(folder, f"x: (!!python/object/apply:os.system [touch {marker}])\n")
    with pytest.warns(UserWarning, match="no calibrated decision threshold"):
        model = TDYSpeakerRecognition.from_hparams(source=str(folder))
    assert not marker.exists() and model.hparams.x.startswith("(!!python")


def test_an_alias_bomb_is_refused_at_once(model_folder, tmp_path):
    folder = copy_folder(model_folder, tmp_path)
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    append(folder, "\n".join(lines) + "\n")
    start = time.monotonic()
    with pytest.raises(UnsafeHyperparamsError, match="aliases"):
        TDYSpeakerRecognition.from_hparams(source=str(folder))
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("change, message", [
    ("    channels: !ref <channels>", "    channels: [2048, 2048, 2048, 2048]"),
    ("    lin_neurons: !ref <emb_dim>", "    lin_neurons: 100000000"),
    ("n_mels: 24", "n_mels: 1000000000"),
    ("    conv: tdy", "    conv: os.system"),
], ids=["huge-model", "huge-embedding", "huge-front-end", "unknown-block"])
def test_arguments_that_would_exhaust_memory_are_refused(model_folder, tmp_path, change, message):
    folder = copy_folder(model_folder, tmp_path)
    path = folder / "hyperparams.yaml"
    assert change in path.read_text()
    path.write_text(path.read_text().replace(change, message, 1))
    with pytest.raises(UnsafeHyperparamsError):
        TDYSpeakerRecognition.from_hparams(source=str(folder))


def test_export_never_runs_the_run_folders_yaml(tmp_path):
    run = fake_run(tmp_path / "run")
    marker = tmp_path / "owned"
    (run / "hyperparams.yaml").write_text(RUN_HPARAMS + f"x: !apply:os.makedirs [{marker}]\n"
                                          f"y: !new:subprocess.Popen [[touch, {marker}]]\n")
    with pytest.warns(UserWarning, match="no threshold.json"):
        export(run, tmp_path / "out")
    assert not marker.exists() and (tmp_path / "out" / "embedding_model.safetensors").is_file()


# Files outside the model folder ------------------------------------------------------


@pytest.mark.parametrize("key, value", [
    ("threshold_file", "{outside}/evil.pth"),
    ("threshold_file", "../../evil.pth"),
    ("cohort_file", "../evil.pt"),
    ("cohort_file", "sub/evil.pt"),
])
def test_file_names_outside_the_folder_are_refused_before_any_fetch(model_folder, tmp_path, key, value):
    folder = copy_folder(model_folder, tmp_path)
    outside = tmp_path / "site-packages"
    outside.mkdir()
    value = value.format(outside=outside)
    path = folder / "hyperparams.yaml"
    path.write_text(path.read_text().replace(f"{key}: null", f"{key}: {value}"))
    savedir = tmp_path / "a" / "b" / "savedir"
    with pytest.raises(ValueError, match="not a plain file name"):
        TDYSpeakerRecognition.from_hparams(source=str(folder), savedir=str(savedir))
    assert not (outside / "evil.pth").exists() and not (tmp_path / "a" / "evil.pth").exists()
    assert not (tmp_path / "a" / "b" / "evil.pt").exists()
    assert sorted(p.name for p in savedir.iterdir()) == sorted([SAVEDIR_MARKER, "hyperparams.yaml"])


def test_a_loadable_name_with_a_path_is_refused(model_folder, tmp_path):
    folder = copy_folder(model_folder, tmp_path)
    path = folder / "hyperparams.yaml"
    path.write_text(path.read_text().replace("        embedding_model: !ref <embedding_model>",
                                             "        ../../evil: !ref <embedding_model>"))
    with pytest.raises(UnsafeHyperparamsError, match="plain name"):
        TDYSpeakerRecognition.from_hparams(source=str(folder), savedir=str(tmp_path / "savedir"))
    assert not (tmp_path / "evil.ckpt").exists()


def test_a_savedir_is_never_served_from_another_source(tmp_path):
    a, b = make_model_folder(tmp_path / "a", seed=1), make_model_folder(tmp_path / "b", seed=2)
    savedir = tmp_path / "savedir"
    wav = torch.from_numpy(speech())
    with pytest.warns(UserWarning):
        from_a = TDYSpeakerRecognition.from_hparams(source=str(a), savedir=str(savedir)).encode_batch(wav)
        from_b = TDYSpeakerRecognition.from_hparams(source=str(b), savedir=str(savedir)).encode_batch(wav)
        own_b = TDYSpeakerRecognition.from_hparams(source=str(b)).encode_batch(wav)
        again_b = TDYSpeakerRecognition.from_hparams(source=str(b), savedir=str(savedir)).encode_batch(wav)
    assert not torch.allclose(from_a, own_b)
    torch.testing.assert_close(from_b, own_b)
    torch.testing.assert_close(again_b, own_b)
    foreign = tmp_path / "my_files"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("x")
    with pytest.raises(ValueError, match="did not fetch"):
        TDYSpeakerRecognition.from_hparams(source=str(a), savedir=str(foreign))
    assert (foreign / "thesis.txt").read_text() == "x" and len(list(foreign.iterdir())) == 1
    with pytest.warns(UserWarning):  # the folder itself as savedir: used in place
        TDYSpeakerRecognition.from_hparams(source=str(a), savedir=str(a))
    assert not (a / SAVEDIR_MARKER).exists()


# Values read from the folder ---------------------------------------------------------


@pytest.mark.parametrize("content, message", [
    ('{"threshold": NaN}', "finite number"),
    ('{"threshold": Infinity}', "finite number"),
    ('{"threshold": -0.5}', r"outside \[0.0, 1.0\]"),
    ('{"threshold": "0.5"}', "finite number"),
    ('{"threshold": true}', "finite number"),
    ('{"threshold": 0.5, "crop": "yes"}', "crop must be true or false"),
    ('{"threshold": 0.5, "score_norm": "z-norm"}', "score_norm must be one of"),
    ('{"threshold": ' + "9" * 5000 + "}", "not a JSON threshold file"),
    ("[" * 10000 + "]" * 10000, "not a JSON threshold file"),
    ("[" * 100000 + "]" * 100000, "too large for a threshold file"),
    ("[0.5]", "JSON object"),
    ("", "not a JSON threshold file"),
])
def test_bad_threshold_files_are_named(model_folder, tmp_path, content, message):
    folder = copy_folder(model_folder, tmp_path)
    (folder / "threshold.json").write_text(content)
    path = folder / "hyperparams.yaml"
    path.write_text(path.read_text().replace("threshold_file: null", "threshold_file: threshold.json"))
    with pytest.raises(ValueError, match=message) as error:
        TDYSpeakerRecognition.from_hparams(source=str(folder))
    assert "threshold.json" in str(error.value)


@pytest.mark.parametrize("cohort, message", [
    (torch.full((5, 16), float("nan")), "NaN"),
    (torch.zeros(0, 16), "at least 2"),
    (torch.randn(1, 16), "at least 2"),
    (torch.ones(5, 16), "the same"),
    (torch.zeros(5, 16), "all-zero"),
    (torch.randn(5, 7), r"shape \(n, 16\)"),
])
def test_bad_cohorts_are_named(model_folder, tmp_path, cohort, message):
    folder = copy_folder(model_folder, tmp_path)
    torch.save(cohort, folder / "cohort_embeddings.pt")
    path = folder / "hyperparams.yaml"
    path.write_text(path.read_text().replace("cohort_file: null", "cohort_file: cohort_embeddings.pt"))
    with pytest.raises(ValueError, match=message) as error, pytest.warns(UserWarning):
        TDYSpeakerRecognition.from_hparams(source=str(folder))
    assert "cohort_embeddings.pt" in str(error.value)


def test_nan_weights_and_an_empty_checkpoint_are_named(model_folder, tmp_path):
    folder = as_written_before_safetensors(copy_folder(model_folder, tmp_path))
    state = torch.load(folder / "embedding_model.ckpt", weights_only=True)
    state["fc.weight"][0, 0] = float("nan")
    torch.save(state, folder / "embedding_model.ckpt")
    with pytest.raises(ValueError, match="NaN or infinite values in fc.weight"):
        TDYSpeakerRecognition.from_hparams(source=str(folder))
    (folder / "embedding_model.ckpt").write_bytes(b"")
    with pytest.raises(ValueError, match="embedding_model.ckpt .*the file is empty"):
        TDYSpeakerRecognition.from_hparams(source=str(folder))


@pytest.mark.parametrize("source, message", [
    ("tdy-org/absent-model", r"hub repository 'tdy-org/absent-model' \(offline"),
    ("my_modle", "If 'my_modle' is meant to be a local model folder, no such folder exists"),
])
def test_a_hub_id_missing_offline_names_the_id_and_the_mode(tmp_path, source, message):
    code = ("from speechbrain_tdy.inference import TDYSpeakerRecognition\n"
            f"TDYSpeakerRecognition.from_hparams(source={source!r})\n")
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode != 0
    assert "hyperparams.yaml" in result.stderr and "FileNotFoundError" in result.stderr
    assert message.replace("\\", "") in result.stderr or __import__("re").search(message, result.stderr)


# Audio headers and samples ------------------------------------------------------------


@pytest.mark.parametrize("rate, message", [
    (3, r"header sample rate 3 Hz is outside"),
    (2**31 - 1, r"header sample rate 2147483647 Hz is outside"),
    (44101, "resampling 44101 Hz to 16000 Hz exactly needs a 705,616,000-value kernel"),
])
def test_odd_header_rates_are_refused_quickly(tmp_path, rate, message):
    path = tmp_path / f"rate{rate}.wav"
    sf.write(path, speech(seconds=3.0, rate=16000), rate)
    start = time.monotonic()
    with pytest.raises(AudioError, match=f"{path}: {message}"):
        load_audio(path)
    assert time.monotonic() - start < 5


def test_usual_rates_resample(tmp_path):
    for rate in (8000, 22050, 44100, 48000):
        path = tmp_path / f"{rate}.wav"
        sf.write(path, speech(seconds=1.0, rate=rate), rate)
        assert abs(len(load_audio(path)) - 16000) <= 1


def test_huge_samples_and_unreadable_files_are_named(tmp_path):
    loud = tmp_path / "loud.wav"
    sf.write(loud, speech() * 1e30, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=f"{loud}: samples reach [0-9.]+e\\+29, expected floats in \\[-1, 1\\]"):
        load_audio(loud)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF" + bytes(40))
    with pytest.raises(AudioError, match=f"{garbage}: cannot read audio"):
        load_audio(garbage)


def test_huge_tensors_are_refused_by_the_interface(model_folder):
    with pytest.warns(UserWarning):
        model = TDYSpeakerRecognition.from_hparams(source=str(model_folder))
    with pytest.raises(ValueError, match=r"exceed 100 in magnitude \(batch items \[0\]\)"):
        model.encode_batch(torch.full((1, 16000), 1e30))


# Trial lists ------------------------------------------------------------------------------


def test_trial_list_encodings_and_repeats(tmp_path, caplog):
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("1 a/b/1.wav a/c/2.wav\n0 a/b/1.wav é/c/3.wav\n".encode("latin-1"))
    with pytest.raises(ValueError, match=f"{latin}:2: not UTF-8"):
        read_trials(latin)
    bom = tmp_path / "bom.txt"
    bom.write_text("\ufeff1 a/b/1.wav a/c/2.wav\n", encoding="utf-8")
    assert read_trials(bom)[0].label == 1
    repeated = tmp_path / "repeated.txt"
    repeated.write_text("1 a/b/1.wav a/c/2.wav\n0 a/b/1.wav d/c/3.wav\n1 a/b/1.wav a/c/2.wav\n")
    assert len(read_trials(repeated)) == 2
    assert f"{repeated}:3 repeats line 1" in caplog.text
    conflicting = tmp_path / "conflicting.txt"
    conflicting.write_text("1 a/b/1.wav a/c/2.wav\n0 a/b/1.wav a/c/2.wav\n")
    with pytest.raises(ValueError, match=f"{conflicting}:2: the pair of line 1 again, with label 0"):
        read_trials(conflicting)


# Output folders ---------------------------------------------------------------------------


def test_an_existing_folder_is_never_replaced_unless_it_is_a_model_folder(model_folder, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="precious"):
            make_model_folder_at(precious, overwrite)
        assert (precious / "thesis.txt").read_text() == "years of work"
    target = copy_folder(model_folder, tmp_path, "old_model")
    old = (target / "embedding_model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        make_model_folder_at(target, overwrite=False)
    make_model_folder_at(target, overwrite=True, seed=5)
    assert (target / "embedding_model.safetensors").read_bytes() != old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old_model", "precious"]  # no staging left


def test_file_and_symlink_outputs_are_refused_without_leftovers(model_folder, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(model_folder)
    for out in (a_file, link):
        for overwrite in (False, True):
            with pytest.raises(FileExistsError):
                make_model_folder_at(out, overwrite)
    assert a_file.read_text() == "keep" and link.resolve() == model_folder.resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "notes.txt"]


def test_an_input_inside_the_output_is_refused(tmp_path):
    run = fake_run(tmp_path / "dir" / "run")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="inside the output folder"):
            export(run, tmp_path / "dir", overwrite=overwrite)
    assert (run / "save").is_dir()


def test_an_error_while_checking_leaves_nothing(tmp_path):
    embedder = tiny_model(0)
    with pytest.raises(ValueError, match="does not reproduce"):
        write_model_folder(tmp_path / "out", ARCH, VALUES, embedder.embedding_model,
                           lambda wavs: embedder(wavs) + 1.0, "card")
    assert list(tmp_path.iterdir()) == []


def make_model_folder_at(out, overwrite, seed=0):
    embedder = tiny_model(seed)
    return write_model_folder(out, ARCH, VALUES, embedder.embedding_model, embedder, "card", overwrite=overwrite)


# Run folders ------------------------------------------------------------------------------




def test_a_moved_or_copied_run_uses_its_own_checkpoint(tmp_path):
    original = fake_run(tmp_path / "A", seed=1)
    copied = Path(shutil.copytree(original, tmp_path / "copy"))
    ckpt = next((copied / "save").glob("CKPT+*")) / "embedding_model.ckpt"
    torch.save(tiny_model(2).embedding_model.state_dict(), ckpt)
    moved = original.rename(tmp_path / "B")
    wav = torch.from_numpy(speech())[None]
    with torch.no_grad():
        outputs = {name: load_training_run(folder).pipeline(wav) for name, folder in (("moved", moved), ("copied", copied))}
    assert not torch.allclose(outputs["moved"], outputs["copied"])
    with pytest.warns(UserWarning):
        export(moved, tmp_path / "exported")
    assert not (tmp_path / "A").exists() and not Path("/old/place").exists()


def test_a_run_yaml_with_aliases_is_read_in_linear_time(tmp_path):
    run = fake_run(tmp_path / "run")
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    lines += ["shared: &shared !new:speechbrain.utils.epoch_loop.EpochCounter {limit: 4}", "again: *shared"]
    (run / "hyperparams.yaml").write_text(RUN_HPARAMS + "\n".join(lines) + "\n")
    start = time.monotonic()
    with pytest.raises(ValueError, match="line 16: a5 takes the file's values beyond 1,048,576 characters once its "
                                         "YAML aliases are expanded"):  # refused before it expands
        load_training_run(run)
    assert time.monotonic() - start < 10


def test_a_run_without_checkpoint_is_an_error_unless_allowed(tmp_path):
    run = fake_run(tmp_path / "run", checkpoint=False)
    with pytest.raises(FileNotFoundError, match="allow_untrained"):
        load_training_run(run)
    assert load_training_run(run, allow_untrained=True).checkpoint is None
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        export(run, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_verify_scores_a_moved_run_and_names_its_checkpoint(tiny_corpus, tmp_path):
    run = fake_run(tmp_path / "before").rename(tmp_path / "after")
    overrides = {"data_folder": tiny_corpus, "train_output_folder": run}
    run_script("verify.py", "hparams/verification.yaml", overrides)
    results = json.loads((run / "verification" / "results.json").read_text())
    assert results["checkpoint"]["name"] == "CKPT+2026-11-27+00-00-00+00" and results["checkpoint"]["temperature"] == 1.0
    calibration = json.loads((run / "threshold.json").read_text())
    assert calibration["on_evaluation_list"] is True
    untrained = fake_run(tmp_path / "untrained", checkpoint=False)
    result = run_script("verify.py", "hparams/verification.yaml", dict(overrides, train_output_folder=untrained),
                        check=False)
    assert result.returncode != 0 and "allow_untrained" in result.stderr
    run_script("verify.py", "hparams/verification.yaml",
               dict(overrides, train_output_folder=untrained, allow_untrained=True))
    assert json.loads((untrained / "verification" / "results.json").read_text())["checkpoint"]["untrained"] is True


# Corpus tools -----------------------------------------------------------------------------


def test_mini_corpus_options_are_checked_without_a_traceback(tmp_path):
    result = subprocess.run([sys.executable, str(TOOLS / "mini_corpus.py"), str(tmp_path / "c"),
                             "--speakers", "6", "--dev-speakers", "1"], capture_output=True, text=True)
    assert result.returncode == 2 and "dev" in result.stderr and "Traceback" not in result.stderr


def test_prepare_names_folders_and_broken_links_named_like_audio(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(RECIPE))
    from voxceleb_prepare import prepare_voxceleb

    corpus = Path(shutil.copytree(tiny_corpus / "wav", tmp_path / "corpus" / "wav"))
    session = next(p for p in sorted(corpus.glob("*/*")) if p.is_dir())
    (session / "folder.wav").mkdir()
    (session / "broken.wav").symlink_to(tmp_path / "nothing.wav")
    with pytest.raises(ValueError) as error:
        prepare_voxceleb(corpus.parent, tmp_path / "save", split_ratio=[75, 25])
    assert f"{session / 'folder.wav'}\tnamed like audio but a folder" in str(error.value)
    assert f"{session / 'broken.wav'}\tnamed like audio but a broken link" in str(error.value)
