"""Inputs that would cost unbounded work, or that reach the user as tracebacks,
are refused before the work, with one line naming the file and the problem."""
import io
import json
import os
import re
import shutil
import time
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import (
    RUN_HPARAMS,
    fake_run,
    finishes_within,
    load_model_folder,
    release_fifos,
    voice,
    write_tiny_model_folder,
    write_voice,
)

from speechbrain_tdy.dataio.audio import AudioError, load_audio, load_utterance
from speechbrain_tdy.dataio.inputs import read_inputs
from speechbrain_tdy.dataio.trials import read_trials
from speechbrain_tdy.embedding.batch import embed_utterances
from speechbrain_tdy.export.run import export
from speechbrain_tdy.inference import TDYSpeakerRecognition
from speechbrain_tdy.inference.gallery import GalleryError, SpeakerGallery
from speechbrain_tdy.storage import model_files
from speechbrain_tdy.storage.model_files import load_parameters
from speechbrain_tdy.storage.run_folder import load_training_run


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny_model_folder(tmp_path_factory.mktemp("bounded") / "model", "tdy_resnet34_quarter")


@pytest.fixture(scope="module")
def model(folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TDYSpeakerRecognition.from_hparams(source=str(folder))


def test_a_long_file_is_refused_from_its_header_before_decoding(tmp_path):
    path = tmp_path / "long.flac"  # 40 s of constant samples: a few KB of FLAC
    sf.write(path, np.full(40 * 16000, 0.25, dtype=np.float32), 16000)
    assert path.stat().st_size < 100_000
    with pytest.raises(AudioError, match=rf"{path}: 40 s of audio, more than max_duration \(30 s\)"):
        load_audio(path, max_duration=30)
    assert load_audio(path, max_duration=60).shape == (40 * 16000,)


def test_a_fifo_is_refused_by_type_instead_of_blocking(tmp_path):
    fifo = tmp_path / "stream.wav"
    os.mkfifo(fifo)
    with pytest.raises(AudioError, match=f"{fifo}: a FIFO, not an audio file"):
        load_audio(fifo)


def test_embed_reports_links_fifos_and_folders_named_like_audio(model, tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    write_voice(audio / "good.wav", 1.5, seed=1)
    (audio / "broken.wav").symlink_to(tmp_path / "nowhere.wav")
    os.mkfifo(audio / "pipe.wav")
    (audio / "folder.wav").mkdir()
    summary = embed_utterances(model, read_inputs(audio), tmp_path / "emb.npz", num_workers=0, progress=False)
    reasons = {utterance.id: reason for utterance, reason in summary.bad}
    assert summary.embedded == 1 and set(reasons) == {"broken", "pipe", "folder"}
    assert "a FIFO" in reasons["pipe"] and "a folder" in reasons["folder"]


@pytest.mark.parametrize("samples", [1, 10, 1000])
def test_a_few_samples_are_not_wrap_padded_into_an_embedding(samples, tmp_path):
    path = tmp_path / "tiny.wav"
    sf.write(path, voice(1.0, seed=0)[:samples], 16000)
    with pytest.raises(AudioError, match=rf"{path}: {samples} samples .* too short to embed"):
        load_utterance(path)


def test_a_checkpoint_whose_entries_inflate_far_beyond_the_model_is_refused_unread(folder, tmp_path):
    model = TDYSpeakerRecognition.from_hparams(source=str(folder)).mods.embedding_model
    state = {key: torch.zeros(256, 1024, 256) if i == 0 else value  # 256 MiB of zeros, deflated to ~250 KB
             for i, (key, value) in enumerate(model.state_dict().items())}
    plain = io.BytesIO()
    torch.save(state, plain)
    bomb = tmp_path / "embedding_model.ckpt"
    with zipfile.ZipFile(io.BytesIO(plain.getvalue())) as source, \
            zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for entry in source.infolist():
            target.writestr(entry.filename, source.read(entry.filename))
    assert bomb.stat().st_size < 2_000_000
    with pytest.raises(ValueError, match=rf"{bomb} would load [\d,]+ bytes, more than the [\d,]+ that a PyTorch"):
        load_parameters(model, bomb)


@pytest.mark.parametrize("wav_lens, message", [
    (torch.tensor([1.0]), r"one relative length per waveform: 2 waveforms, wav_lens of shape \(1,\)"),
    (1.0, r"one relative length per waveform: 2 waveforms, wav_lens of shape \(\)"),
    (torch.tensor([1.0, 0.0]), r"relative lengths in \(0, 1\], got \[0.0\]"),
    (torch.tensor([1.0, -0.5]), r"relative lengths in \(0, 1\], got \[-0.5\]"),
    (torch.tensor([1.0, float("nan")]), r"relative lengths in \(0, 1\], got \[nan\]"),
])
def test_encode_batch_checks_its_lengths(model, wav_lens, message):
    with pytest.raises(ValueError, match=message):
        model.encode_batch(torch.randn(2, 16000) * 0.1, wav_lens)


def test_an_empty_batch_is_a_clear_error(model):
    with pytest.raises(ValueError, match="Expected waveforms of shape"):
        model.encode_batch(torch.zeros(0, 16000))


def test_a_folder_cannot_choose_how_the_callers_machine_runs(folder, tmp_path):
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    for path in folder.iterdir():
        (hostile / path.name).write_bytes(path.read_bytes())
    with open(hostile / "hyperparams.yaml", "a", encoding="utf-8") as stream:
        stream.write("compile: True\ncompile_mode: max-autotune\ndevice: cuda:7\njit: True\n")
    with pytest.warns(UserWarning, match=r"ignoring run options set by the model folder \(compile, compile_mode, "
                                         r"device, jit\)"):
        loaded = TDYSpeakerRecognition.from_hparams(source=str(hostile), compile=False)
    assert loaded.device == "cpu" and not loaded.compile and not loaded.jit


def test_a_home_relative_source_is_a_local_folder(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(folder.parent))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = TDYSpeakerRecognition.from_hparams(source=f"~/{folder.name}", savedir=str(tmp_path / "save"))
    assert (tmp_path / "save" / "embedding_model.safetensors").exists() and loaded.encode_batch(torch.ones(16000)) is not None


@pytest.mark.parametrize("name, message", [
    ("unknown", "what identify\\(\\) answers for unknown speakers"),
    ("eve\tbob", "control characters"),
    ("eve\nbob 0.99", "control characters"),
    ("\x1b[2Jeve", "control characters"),
])
def test_gallery_names_are_checked_on_load_as_on_add(name, message, tmp_path):
    gallery = SpeakerGallery()
    gallery.add("alice", torch.nn.functional.normalize(torch.randn(2, 4), dim=-1))
    gallery.save(tmp_path)
    index = json.loads((tmp_path / "gallery.json").read_text())
    index["speakers"][0]["name"] = name
    (tmp_path / "gallery.json").write_text(json.dumps(index))
    with pytest.raises(GalleryError, match=message):
        SpeakerGallery.load(tmp_path)
    with pytest.raises(ValueError, match=message):
        SpeakerGallery().add(name, torch.ones(1, 4))


def test_gallery_numbers_out_of_range_are_named(tmp_path):
    gallery = SpeakerGallery()
    gallery.add("alice", torch.nn.functional.normalize(torch.randn(2, 4), dim=-1))
    gallery.save(tmp_path)
    text = (tmp_path / "gallery.json").read_text().replace('"recordings": 2', '"recordings": 1e400')
    (tmp_path / "gallery.json").write_text(text)
    with pytest.raises(GalleryError, match=r"recordings must be an integer in \[1, 1000000000\]"):
        SpeakerGallery.load(tmp_path)


# More bounded work: the cohort's cap, high rates, the embed command ---------------------


@pytest.fixture
def spoilt(folder, tmp_path):
    """A fresh copy of the tiny model folder, to spoil."""
    return shutil.copytree(folder, tmp_path / "spoilt")


def test_a_cohort_beyond_the_documented_cap_is_refused_before_inflating(spoilt, monkeypatch):
    monkeypatch.setattr(model_files, "MAX_COHORT_BYTES", 1_000_000)
    torch.save(torch.randn(20_000, 16), spoilt / "cohort_embeddings.pt")  # 1.28 MB of values
    hparams = spoilt / "hyperparams.yaml"
    hparams.write_text(hparams.read_text().replace("cohort_file: null", "cohort_file: cohort_embeddings.pt"))
    with pytest.raises(ValueError, match=r"cohort_embeddings.pt would load 1,280,[\d,]+ bytes, more than the "
                                         "1,000,000 that a cohort"):
        load_model_folder(spoilt)


def constant_flac(path, seconds, rate):
    """A FLAC of ``seconds`` of a constant: a few kilobytes per minute."""
    sf.write(path, np.full(int(seconds * rate), 0.25, np.float32), rate, format="FLAC", subtype="PCM_16")
    return path


def test_above_48_khz_max_duration_counts_48000_samples_a_second(tmp_path):
    high = constant_flac(tmp_path / "high.flac", 20, 192000)  # 3.84 M samples: as many as 80 s at 48 kHz
    tracemalloc.start()
    with pytest.raises(AudioError, match=re.escape(f"{high}: 20 s of audio (3,840,000 samples at 192,000 Hz), more "
                                                   "than max_duration (60 s) of 48,000 samples a second")):
        load_audio(high, max_duration=60)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2**20  # decoding would take 15 MB
    assert load_audio(high, max_duration=80).shape == (20 * 16000,)


def test_embed_applies_the_models_max_duration(folder, tmp_path):
    (tmp_path / "audio").mkdir()
    long = constant_flac(tmp_path / "audio" / "long.flac", 130, 8000)
    write_voice(tmp_path / "audio" / "fine.wav", 1.5, seed=1)
    model = load_model_folder(folder, overrides={"max_duration": 120})
    summary = embed_utterances(model, read_inputs(tmp_path / "audio"), tmp_path / "out.npz", num_workers=0,
                               progress=False)
    assert summary.embedded == 1 and [reason for _, reason in summary.bad] == [
        f"{long}: 130 s of audio, more than max_duration (120 s); cut the file, or pass a larger max_duration"]


# YAML aliases -----------------------------------------------------------------------


def alias_bomb(key, levels=7):
    """YAML lines whose ``key`` expands to 10**levels scalars through nested
    aliases, their anchors in an object (which a plain-value reader skips)."""
    lines = ["augment: !new:speechbrain.augment.augmenter.Augmenter", "    b0: &b0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"    b{i}: &b{i} [" + ", ".join([f"*b{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + f"\n{key}: *b{levels - 1}\n"


def test_aliases_in_a_used_key_of_a_runs_hyperparams_are_refused_before_expansion(tmp_path):
    run = fake_run(tmp_path / "run")
    text = RUN_HPARAMS.replace("data_folder: /somewhere/else\n", "") + alias_bomb("data_folder")
    (run / "hyperparams.yaml").write_text(text)
    line = text.splitlines().index("data_folder: *b6") + 1
    start = time.monotonic()
    with pytest.raises(ValueError, match=f"{run / 'hyperparams.yaml'}, line {line}: data_folder takes the file's "
                                         "values beyond 1,048,576 characters once its YAML aliases are expanded"):
        export(run, tmp_path / "model")
    assert time.monotonic() - start < 10 and not (tmp_path / "model").exists()


def test_small_aliases_and_object_aliases_in_a_runs_hyperparams_still_load(tmp_path):
    run = fake_run(tmp_path / "run")
    text = RUN_HPARAMS + ("sizes: &sizes [8, 8, 8, 16]\nsame_sizes: *sizes\n"
                          "shared: &shared !new:speechbrain.utils.epoch_loop.EpochCounter {limit: 4}\n"
                          "again: *shared\n")
    (run / "hyperparams.yaml").write_text(text)
    hparams = load_training_run(run).hparams
    assert hparams["same_sizes"] == [8, 8, 8, 16] and "again" not in hparams


def test_aliases_in_a_checkpoints_meta_are_refused(tmp_path):
    run = fake_run(tmp_path / "run")
    meta = next((run / "save").glob("CKPT+*")) / "CKPT.yaml"
    lines = ["b0: &b0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"b{i}: &b{i} [" + ", ".join([f"*b{i - 1}"] * 10) + "]" for i in range(1, 6)]  # 10**6 once expanded
    meta.write_text(meta.read_text() + "\n".join(lines) + "\n")
    start = time.monotonic()
    with pytest.raises(ValueError, match=re.escape(f"{meta}, line 6: YAML aliases are refused in a checkpoint's")):
        load_training_run(run)
    assert time.monotonic() - start < 10


# Files are size-checked before they are read -------------------------------------------


@pytest.mark.parametrize("kind", ["model folder", "run"])
def test_an_oversized_hyperparams_file_is_refused_without_being_read(spoilt, tmp_path, kind):
    hparams = spoilt / "hyperparams.yaml" if kind == "model folder" else fake_run(tmp_path / "run") / "hyperparams.yaml"
    with open(hparams, "ab") as stream:
        stream.truncate(256 * 2**20)  # a sparse 256 MB file
    tracemalloc.start()
    with pytest.raises(ValueError, match=re.escape(f"{hparams}: 268,435,456 bytes, over the 262,144-byte limit")):
        load_model_folder(spoilt) if kind == "model folder" else load_training_run(hparams.parent)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 32 * 2**20


def test_an_oversized_gallery_file_is_refused_without_being_read(tmp_path):
    gallery = tmp_path / "gallery"
    SpeakerGallery().save(gallery)
    with open(gallery / "gallery.json", "ab") as stream:
        stream.truncate(256 * 2**20)  # a sparse 256 MB file
    tracemalloc.start()
    with pytest.raises(GalleryError, match=f"{gallery / 'gallery.json'}: 268,435,456 bytes, over the"):
        SpeakerGallery.load(gallery)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 32 * 2**20


# Special files are refused by type before they are opened -----------------------------


@pytest.fixture
def fifos(tmp_path):
    """``tmp_path``; FIFOs made there are released after the test, so that
    code that blocked on one (a failure) does not stay blocked."""
    yield tmp_path
    release_fifos(tmp_path)


def test_special_files_named_as_lists_trials_or_audio_are_refused_unopened(fifos):
    for name, read, what in (("trials.txt", read_trials, "a trial list"),
                             ("list.txt", read_inputs, "a text list of audio files")):
        os.mkfifo(fifos / name)
        with pytest.raises(ValueError, match=re.escape(f"{fifos / name}: a FIFO, not {what}")):
            finishes_within(20, read, fifos / name)
    with pytest.raises(AudioError, match="/dev/zero: a device, not an audio file"):
        finishes_within(20, load_audio, "/dev/zero")


@pytest.mark.parametrize("name", ["hyperparams.yaml", "embedding_model.safetensors", "threshold.json"])
def test_special_files_in_a_model_folder_are_refused_unopened(spoilt, name):
    (spoilt / name).unlink(missing_ok=True)
    os.mkfifo(spoilt / name)
    if name == "threshold.json":
        hparams = spoilt / "hyperparams.yaml"
        hparams.write_text(hparams.read_text().replace("threshold_file: null", "threshold_file: threshold.json"))
    try:
        with pytest.raises(ValueError, match=re.escape(f"{spoilt / name}: a FIFO, not a model folder's {name}")):
            finishes_within(30, load_model_folder, spoilt)
    finally:
        release_fifos(spoilt)


def test_special_files_in_a_run_or_a_gallery_are_refused_unopened(fifos):
    run = fake_run(fifos / "run")
    meta = next((run / "save").glob("CKPT+*")) / "CKPT.yaml"
    gallery = fifos / "gallery"
    SpeakerGallery().save(gallery)
    for fifo, read, argument in ((meta, load_training_run, run), (run / "hyperparams.yaml", load_training_run, run),
                                 (gallery / "gallery.json", SpeakerGallery.load, gallery)):
        fifo.unlink()
        os.mkfifo(fifo)
        with pytest.raises(ValueError, match=re.escape(f"{fifo}: a FIFO, not a")):
            finishes_within(30, read, argument)
