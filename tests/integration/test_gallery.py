"""Enrollment and identification: the gallery, its files, the interface methods and the command."""
import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import voice, write_tiny_model_folder, write_voice

from speechbrain_tdy.cli.gallery import main
from speechbrain_tdy.inference import TDYSpeakerRecognition
from speechbrain_tdy.inference import gallery as gallery_module
from speechbrain_tdy.inference.gallery import UNKNOWN, GalleryError, SpeakerGallery
from speechbrain_tdy.scoring.scores import normalise_score


@pytest.fixture
def model(model_folder):
    """A fresh interface (empty gallery) per test."""
    return TDYSpeakerRecognition.from_hparams(source=str(model_folder))


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Two recordings of each of three voices (the tiny model is untrained:
    only identical recordings are reliably closest)."""
    root = tmp_path_factory.mktemp("voices")
    return {name: [write_voice(root / f"{name}{i}.wav", 1.2 + 0.3 * i, seed=10 * k + i) for i in range(2)]
            for k, name in enumerate(("alice", "bob", "carol"))}


# The gallery ------------------------------------------------------------------------


def test_the_mean_is_updated_exactly_as_recordings_are_added():
    embeddings = F.normalize(torch.randn(5, 8), dim=-1)
    at_once, in_steps = SpeakerGallery(), SpeakerGallery()
    at_once.add("a", embeddings)
    in_steps.add("a", embeddings[:2])
    in_steps.add("a", embeddings[2:])
    torch.testing.assert_close(in_steps.means(), embeddings.mean(dim=0, keepdim=True))
    torch.testing.assert_close(at_once.means(), in_steps.means())
    assert in_steps.recordings("a") == 5


def test_names_and_shapes_are_checked():
    gallery = SpeakerGallery()
    gallery.add("a", torch.ones(1, 4))
    with pytest.raises(ValueError, match="4-dimensional embeddings, got 3"):
        gallery.add("b", torch.ones(1, 3))
    for name in ("", " a", UNKNOWN, 7):
        with pytest.raises(ValueError):
            gallery.add(name, torch.ones(1, 4))
    with pytest.raises(KeyError, match=r"No speaker 'z' in the gallery \(enrolled: a\)"):
        gallery.remove("z")


def test_save_and_load_without_pickle(tmp_path):
    gallery = SpeakerGallery()
    gallery.add("a", F.normalize(torch.randn(3, 8), dim=-1))
    gallery.add("b c", F.normalize(torch.randn(1, 8), dim=-1))
    gallery.fingerprint = torch.randn(8)
    gallery.save(tmp_path / "g")
    loaded = SpeakerGallery.load(tmp_path / "g")
    assert loaded.names == ["a", "b c"] and loaded.recordings("a") == 3
    torch.testing.assert_close(loaded.means(), gallery.means())
    torch.testing.assert_close(loaded.fingerprint, gallery.fingerprint)
    index = json.loads((tmp_path / "g" / "gallery.json").read_text())
    with np.load(tmp_path / "g" / index["embeddings_file"], allow_pickle=False) as arrays:
        assert arrays["means"].dtype == np.float32
    loaded.remove("a")
    loaded.save(tmp_path / "g")
    assert [p.name for p in (tmp_path / "g").iterdir()].count(index["embeddings_file"]) == 0  # old matrix gone
    assert SpeakerGallery.load(tmp_path / "g").names == ["b c"]


def test_saving_replaces_only_the_matrix_the_gallery_wrote(tmp_path):
    """Files of the user's in the gallery folder, even of the matrix's naming pattern, are kept."""
    folder = tmp_path / "g"
    folder.mkdir()
    users = {"embeddings-mine.npz": b"user data", "embeddings-0123456789abcdef.npz": b"more", "notes.txt": b"x"}
    for name, data in users.items():
        (folder / name).write_bytes(data)
    gallery = SpeakerGallery()
    for name in ("a", "b", "c"):
        gallery.add(name, F.normalize(torch.randn(2, 8), dim=-1))
        gallery.save(folder)
    matrices = [p.name for p in folder.glob("embeddings-*.npz") if p.name not in users]
    assert matrices == [json.loads((folder / "gallery.json").read_text())["embeddings_file"]]
    assert {name: (folder / name).read_bytes() for name in users} == users
    assert SpeakerGallery.load(folder).names == ["a", "b", "c"]


def test_a_save_killed_before_the_index_is_renamed_leaves_the_old_gallery(tmp_path, monkeypatch):
    gallery = SpeakerGallery()
    gallery.add("a", torch.ones(1, 4))
    gallery.save(tmp_path / "g")
    gallery.add("b", torch.ones(1, 4))

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(gallery_module, "write_text_atomically", killed)
    with pytest.raises(KeyboardInterrupt):
        gallery.save(tmp_path / "g")
    assert SpeakerGallery.load(tmp_path / "g").names == ["a"]


@pytest.mark.parametrize("damage, message", [
    ("index_not_json", r"gallery.json: not a speaker gallery"),
    ("index_missing_key", r"gallery.json: not a speaker gallery \(KeyError"),
    ("matrix_changed", r"embeddings-.*\.npz: checksum differs from the one in .*gallery.json"),
    ("matrix_missing", r"gallery.json names embeddings-.*\.npz, which cannot be read"),
    ("index_escapes", r"gallery.json: names '../embeddings-x.npz' as its embeddings file; a gallery's is an"),
])
def test_damaged_gallery_files_are_named(tmp_path, damage, message):
    gallery = SpeakerGallery()
    gallery.add("a", torch.ones(1, 4))
    gallery.save(tmp_path)
    index_path = tmp_path / "gallery.json"
    index = json.loads(index_path.read_text())
    matrix = tmp_path / index["embeddings_file"]
    if damage == "index_not_json":
        index_path.write_text("{")
    elif damage == "index_missing_key":
        del index["speakers"]
        index_path.write_text(json.dumps(index))
    elif damage == "matrix_changed":
        data = bytearray(matrix.read_bytes())
        data[len(data) // 2] ^= 0xFF
        matrix.write_bytes(bytes(data))
    elif damage == "matrix_missing":
        matrix.unlink()
    elif damage == "index_escapes":
        index["embeddings_file"] = "../embeddings-x.npz"
        index_path.write_text(json.dumps(index))
    with pytest.raises(GalleryError, match=message):
        SpeakerGallery.load(tmp_path)


def test_a_missing_gallery_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="gallery.json: no such gallery file"):
        SpeakerGallery.load(tmp_path / "none")


# Enrol and identify -----------------------------------------------------------------


def test_enroll_averages_normalised_embeddings_of_files_and_waveforms(model, recordings):
    alice, wav = recordings["alice"][0], torch.from_numpy(voice(1.5, seed=1))
    model.enroll("alice", alice)
    model.enroll("alice", [wav])
    expected = torch.stack([model.embed_file(alice), model.encode_batch(wav, normalize=True)[0, 0]]).mean(0)
    torch.testing.assert_close(model.gallery.means()[0], expected, rtol=0, atol=1e-5)
    assert model.gallery.recordings("alice") == 2


def test_identify_names_the_closest_speaker_and_unknown_below_the_threshold(model, recordings):
    for name, files in recordings.items():
        model.enroll(name, files[0])
    names, scores = model.identify(recordings["bob"][0], top_k=3, threshold=-1.0)
    assert names[0] == "bob" and float(scores[0]) == pytest.approx(1.0, abs=1e-5)
    assert sorted(names) == ["alice", "bob", "carol"] and bool((scores[:-1] >= scores[1:]).all())
    cosines = {n: float(model.embed_file(recordings["bob"][0]) @ model.embed_file(f[0])) for n, f in recordings.items()}
    assert scores.tolist() == pytest.approx([cosines[n] for n in names], abs=1e-5)
    second = float(scores[1])
    names, _ = model.identify(recordings["bob"][0], top_k=2, threshold=second)
    assert names == ["bob", UNKNOWN]
    names, _ = model.identify(recordings["bob"][0], threshold=1.01)
    assert names == [UNKNOWN]
    with pytest.raises(ValueError, match="no calibrated threshold.json: pass threshold="):
        model.identify(recordings["bob"][0])  # the model's threshold, and this one has none


def test_score_normalisation_applies_as_in_verify_files(model_folder, recordings, tmp_path):
    folder = shutil.copytree(model_folder, tmp_path / "model")
    cohort = F.normalize(torch.randn(30, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    torch.save(cohort, folder / "cohort_embeddings.pt")
    (folder / "threshold.json").write_text(json.dumps({"threshold": 0.5, "score_norm": "as-norm", "as_norm_top_n": 7}))
    text = (folder / "hyperparams.yaml").read_text().replace("threshold_file: null", "threshold_file: threshold.json")
    (folder / "hyperparams.yaml").write_text(text.replace("cohort_file: null", "cohort_file: cohort_embeddings.pt"))
    model = TDYSpeakerRecognition.from_hparams(source=str(folder))
    enrol, test = recordings["alice"][0], recordings["carol"][1]
    model.enroll("alice", enrol)
    names, scores = model.identify(test)
    verify_score, accepted = model.verify_files(enrol, test)
    assert float(scores[0]) == pytest.approx(float(verify_score), abs=1e-5)
    assert names == (["alice"] if bool(accepted) else [UNKNOWN])
    x, y = model.embed_file(enrol), model.embed_file(test)
    assert float(verify_score) == pytest.approx(normalise_score(float(x @ y), x, y, cohort, 7), abs=1e-4)
    _, plain = model.identify(test, score_norm=None, threshold=0.0)
    assert float(plain[0]) == pytest.approx(float(x @ y), abs=1e-5)


def test_a_gallery_of_another_model_is_refused(model, recordings, tmp_path):
    model.enroll("alice", recordings["alice"][0])
    other = TDYSpeakerRecognition.from_hparams(
        source=str(write_tiny_model_folder(tmp_path / "other", "tdy_resnet34_quarter", seed=1)))
    other.gallery = model.gallery
    with pytest.raises(ValueError, match="enrolled with another model"):
        other.identify(recordings["alice"][1])


def test_identify_errors(model, recordings):
    with pytest.raises(ValueError, match="gallery is empty"):
        model.identify(recordings["alice"][0])
    model.enroll("alice", recordings["alice"][0])
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        model.identify(recordings["alice"][0], top_k=0)
    with pytest.raises(ValueError, match=r"waveform of shape \(samples,\), got shape \(2, 100\)"):
        model.identify(torch.zeros(2, 100), threshold=0.5)
    with pytest.raises(ValueError, match="No recordings"):
        model.enroll("bob", [])


# The command ------------------------------------------------------------------------


def test_command_line_enroll_list_identify_remove(model_folder, recordings, tmp_path, capsys):
    gallery = str(tmp_path / "gallery")
    for name, files in recordings.items():
        main([str(model_folder), gallery, "enroll", name, *files])
    main([str(model_folder), gallery, "list"])
    assert capsys.readouterr().out.splitlines()[-3:] == ["alice\t2", "bob\t2", "carol\t2"]
    main([str(model_folder), gallery, "identify", recordings["carol"][0], "--top-k", "2", "--threshold", "0"])
    line = capsys.readouterr().out.strip().split("\t")
    assert line[0] == recordings["carol"][0] and len(line) == 3 and all(" " in field for field in line[1:])
    main([str(model_folder), gallery, "remove", "carol"])
    assert SpeakerGallery.load(gallery).names == ["alice", "bob"]
    with pytest.raises(SystemExit, match=r"error: No speaker 'carol'"):
        main([str(model_folder), gallery, "remove", "carol"])
    with pytest.raises(SystemExit, match=r"error: .*missing.wav"):
        main([str(model_folder), gallery, "enroll", "dave", str(tmp_path / "missing.wav")])
    assert SpeakerGallery.load(gallery).names == ["alice", "bob"]
