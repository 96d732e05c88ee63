"""Every bad input named (issue 28): one line naming the file (and the line or
key) and what is wrong, never a RecursionError, a TypeError from deep inside
SpeechBrain or a stale file served without a word; commands print ``error: ...``."""
import hashlib
import json
import re
import shutil
import warnings

import numpy as np
import pytest
import torch
from helpers import fake_run, load_model_folder, voice, write_voice
from safetensors.torch import load_file, save_file
from speechbrain.utils.fetching import LocalStrategy

from speechbrain_tdy.cli import embed as embed_command
from speechbrain_tdy.dataio.audio import AudioError
from speechbrain_tdy.export.run import export
from speechbrain_tdy.inference.gallery import GalleryError, SpeakerGallery
from speechbrain_tdy.storage.run_folder import load_training_run

DEEP = "[" * 5000 + "]" * 5000  # deeper than Python's recursion limit for a recursive reader


@pytest.fixture
def spoilt(model_folder, tmp_path):
    """A fresh copy of the tiny model folder, to spoil."""
    return shutil.copytree(model_folder, tmp_path / "spoilt")


def append(path, text):
    path.write_text(path.read_text() + text)
    return path


# Deep nesting --------------------------------------------------------------------------


def test_deep_nesting_in_a_model_folders_hyperparams_is_named(spoilt):
    hparams = append(spoilt / "hyperparams.yaml", f"note: {DEEP}\n")
    line = len(hparams.read_text().splitlines())
    with pytest.raises(ValueError, match=re.escape(f"{hparams}, line {line}: nested more than 32 deep, too deep "
                                                   "for a model folder's hyperparams.yaml")):
        load_model_folder(spoilt)


def test_deep_nesting_in_a_run_is_named(tmp_path):
    run = fake_run(tmp_path / "run")
    hparams = append(run / "hyperparams.yaml", f"note: {DEEP}\n")
    with pytest.raises(ValueError, match=re.escape(f"{hparams}, line 11: nested more than 32 deep")):
        load_training_run(run)
    hparams.write_text(hparams.read_text().replace(f"note: {DEEP}\n", ""))
    meta = append(next((run / "save").glob("CKPT+*")) / "CKPT.yaml", f"note: {DEEP}\n")
    with pytest.raises(ValueError, match=re.escape(f"{meta}, line 5: nested more than 32 deep")):
        load_training_run(run)


def test_deep_nesting_in_a_gallery_is_named(tmp_path):
    SpeakerGallery().save(tmp_path)
    (tmp_path / "gallery.json").write_text(DEEP * 20)
    with pytest.raises(GalleryError, match=re.escape(f"{tmp_path / 'gallery.json'}: not a speaker gallery "
                                                     "(ValueError: gallery.json: nested too deeply")):
        SpeakerGallery.load(tmp_path)


def test_a_command_names_deep_nesting_without_a_traceback(spoilt, tmp_path, capsys):
    append(spoilt / "hyperparams.yaml", f"note: {DEEP}\n")
    write_voice(tmp_path / "a.wav", 1.0, seed=0)
    (tmp_path / "list.txt").write_text("a.wav\n")
    with pytest.raises(SystemExit, match=re.escape(f"error: {spoilt / 'hyperparams.yaml'}, line")):
        embed_command.main([str(spoilt), str(tmp_path / "list.txt"), str(tmp_path / "out.npz"), "--num-workers", "0"])


# Values SpeechBrain would fail on deep inside -------------------------------------------


@pytest.mark.parametrize("modules, message", [
    ("5", "'modules' must map names to modules built in the file, got int"),
    ("{compute_features: 5}", "'modules' must map names to modules built in the file, got a mapping to other values"),
    ("{compute_features: !ref <compute_features>}", "'modules' lacks embedding_model"),
])
def test_modules_that_are_not_a_model_folders_are_named(spoilt, modules, message):
    hparams = spoilt / "hyperparams.yaml"
    text = re.sub(r"modules:\n(    .*\n)+", f"modules: {modules}\n", hparams.read_text())
    hparams.write_text(text)
    with pytest.raises(ValueError, match=re.escape(f"{hparams}: {message}")):
        load_model_folder(spoilt)


@pytest.mark.parametrize("meta, message", [
    ("EER: fast", "EER must be a finite number, got 'fast'"),
    ("EER: .nan", "EER must be a finite number, got nan"),
    ("ErrorRate: -.inf", "ErrorRate must be a finite number, got -inf"),
    ("temperature: [1, 2]", "'temperature' must be a name with a plain value"),
    ("note: [1, 2]", "'note' must be a name with a plain value"),
])
def test_a_checkpoints_meta_values_are_checked(tmp_path, meta, message):
    run = fake_run(tmp_path / "run")
    path = append(next((run / "save").glob("CKPT+*")) / "CKPT.yaml", meta + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}: {message}")):
        load_training_run(run)


def test_a_broken_label_encoder_is_named(tmp_path):
    run = fake_run(tmp_path / "run")
    encoder = run / "save" / "label_encoder.txt"
    encoder.write_text("'id10001' => 0\nthis is no label encoder\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no threshold.json
        with pytest.raises(ValueError, match=re.escape(f"{encoder}: not a SpeechBrain label_encoder.txt")):
            export(run, tmp_path / "model")


# Galleries -------------------------------------------------------------------------------


def saved_gallery(folder, means, fingerprint=None, dim=None):
    """A gallery folder as save() writes it, with these arrays and 'dim'."""
    gallery = SpeakerGallery()
    gallery.add("alice", torch.nn.functional.normalize(torch.randn(1, 4), dim=-1))
    gallery.save(folder)
    arrays = {"means": means} | ({} if fingerprint is None else {"fingerprint": fingerprint})
    np.savez(folder / "embeddings-x.npz", **arrays)
    index = json.loads((folder / "gallery.json").read_text())
    digest = hashlib.sha256((folder / "embeddings-x.npz").read_bytes()).hexdigest()
    index.update(embeddings_file="embeddings-x.npz", sha256=digest, dim=4 if dim is None else dim)
    (folder / "gallery.json").write_text(json.dumps(index))
    return folder


@pytest.mark.parametrize("means, fingerprint, dim, message", [
    (np.ones((1, 5), np.float32), None, None, "expected 1 finite float32 means of dimension 4 (the gallery's 'dim'), "
                                              "got float32 values of shape (1, 5)"),
    (np.ones((1, 4), np.float64), None, None, "expected 1 finite float32 means of dimension 4"),
    (np.ones((1, 4), np.float32), np.ones(4, np.float32) * np.inf, None, "expected a finite float32 model "
                                                                         "fingerprint of dimension 4"),
    (np.ones((1, 4), np.float32), None, "4", "dim must be an integer in [1, 8192], got '4'"),
])
def test_gallery_arrays_of_another_size_or_type_are_named(tmp_path, means, fingerprint, dim, message):
    saved_gallery(tmp_path, means, fingerprint, dim)
    with pytest.raises(GalleryError, match=re.escape(message)):
        SpeakerGallery.load(tmp_path)


def test_a_gallery_of_another_embedding_size_than_the_model_is_named(model_folder, tmp_path):
    model = load_model_folder(model_folder)
    model.gallery = SpeakerGallery.load(saved_gallery(tmp_path, np.ones((1, 4), np.float32)))
    with pytest.raises(ValueError, match="The gallery holds 4-dimensional embeddings, this model's are 16-dimensional"):
        model.identify(torch.from_numpy(voice(1.0, seed=0)), threshold=0.5)


def test_a_waveform_too_short_to_embed_is_refused_as_a_file_is(model_folder, tmp_path):
    model = load_model_folder(model_folder)
    with pytest.raises(AudioError, match=re.escape("the waveform: 10 samples (0.6 ms), too short to embed")):
        model.enroll("alice", torch.from_numpy(voice(1.0, seed=0)[:10]))
    assert len(model.gallery) == 0


# Copies ----------------------------------------------------------------------------------


def test_a_copied_model_is_never_served_stale(spoilt, tmp_path):
    savedir, wav = tmp_path / "copies", torch.from_numpy(voice(1.5, seed=3))
    first = load_model_folder(spoilt, savedir=str(savedir), local_strategy=LocalStrategy.COPY).encode_batch(wav)
    state = load_file(spoilt / "embedding_model.safetensors")
    save_file({key: value * 1.5 if value.is_floating_point() else value for key, value in state.items()},
              spoilt / "embedding_model.safetensors")
    again = load_model_folder(spoilt, savedir=str(savedir), local_strategy=LocalStrategy.COPY).encode_batch(wav)
    fresh = load_model_folder(spoilt).encode_batch(wav)
    assert not torch.allclose(first, fresh) and torch.equal(again, fresh)
