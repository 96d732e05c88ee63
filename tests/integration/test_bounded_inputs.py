"""Inputs that would cost unbounded work, or that reach the user as tracebacks,
are refused before the work, with one line naming the file and the problem."""
import io
import json
import os
import warnings
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import voice, write_tiny_model_folder, write_voice

from speechbrain_tdy.dataio.audio import AudioError, load_audio, load_utterance
from speechbrain_tdy.dataio.inputs import read_inputs
from speechbrain_tdy.embedding.batch import embed_utterances
from speechbrain_tdy.inference import TDYSpeakerRecognition
from speechbrain_tdy.inference.gallery import GalleryError, SpeakerGallery
from speechbrain_tdy.storage.model_files import load_parameters


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
    assert (tmp_path / "save" / "embedding_model.ckpt").exists() and loaded.encode_batch(torch.ones(16000)) is not None


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
