"""Batch embedding command: inputs, padding-exact batches, resuming, bad files."""
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import voice, write_tiny_model_folder, write_voice

from speechbrain_tdy.cli.embed import main as embed_main
from speechbrain_tdy.dataio.audio import AudioError
from speechbrain_tdy.dataio.inputs import read_inputs
from speechbrain_tdy.embedding.batch import embed_utterances
from speechbrain_tdy.embedding.files import embed_files
from speechbrain_tdy.inference import TDYSpeakerRecognition
from speechbrain_tdy.storage.embeddings_file import read_embeddings

DURATIONS = (0.4, 0.9, 1.3, 2.0, 2.6, 3.1, 4.0)  # 0.4 s: shorter than min_duration, wrap-padded


@pytest.fixture(scope="module")
def model(model_folder):
    return TDYSpeakerRecognition.from_hparams(source=str(model_folder))


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """A folder of recordings of different durations, in subfolders and formats."""
    root = tmp_path_factory.mktemp("audio")
    (root / "spk1" / "sess").mkdir(parents=True)
    (root / "spk2").mkdir()
    for i, seconds in enumerate(DURATIONS):
        folder = root / ("spk1/sess" if i % 2 else "spk2")
        write_voice(folder / f"u{i}.wav", seconds, seed=i)
    sf.write(root / "spk2" / "f.flac", voice(1.5, seed=20), 16000)
    sf.write(root / "spk2" / "o.ogg", voice(1.5, seed=21), 16000)
    sf.write(root / "spk2" / "r22k.wav", voice(1.7, seed=22, rate=22050), 22050)
    (root / "notes.txt").write_text("not audio, not listed")
    return root


def expected_embeddings(model, utterances):
    return {u.id: model.embed_file(u.path).numpy() for u in utterances}


# Inputs -----------------------------------------------------------------------------


def test_a_folder_is_searched_recursively_for_audio(audio):
    ids = [u.id for u in read_inputs(audio)]
    assert ids == ["spk1/sess/u1", "spk1/sess/u3", "spk1/sess/u5", "spk2/f", "spk2/o", "spk2/r22k",
                   "spk2/u0", "spk2/u2", "spk2/u4", "spk2/u6"]


def test_lists_and_wav_scp_give_paths_relative_to_the_list(audio, tmp_path):
    listing = audio / "list.txt"
    listing.write_text("# comment\nspk2/u0.wav\n\n  spk1/sess/u1.wav  \n")
    assert [(u.id, u.path, u.source) for u in read_inputs(listing)] == [
        ("spk2/u0", str(audio / "spk2/u0.wav"), f"{listing}:2"),
        ("spk1/sess/u1", str(audio / "spk1/sess/u1.wav"), f"{listing}:4"),
    ]
    scp = tmp_path / "wav.scp"
    scp.write_text(f"utt-a {audio / 'spk2/u0.wav'}\nutt-b {audio / 'spk2/f.flac'}\n")
    assert [(u.id, u.path) for u in read_inputs(scp)] == [("utt-a", str(audio / "spk2/u0.wav")),
                                                         ("utt-b", str(audio / "spk2/f.flac"))]


@pytest.mark.parametrize("name, text, message", [
    ("wav.scp", "a x.wav\nb\n", r"wav.scp:2: expected 'id path'"),
    ("wav.scp", "a sox x.wav -t wav - |\n", r"wav.scp:1: piped commands are not supported"),
    ("wav.scp", "a x.wav\na y.wav\n", r"wav.scp:2: id 'a' is also the id of .*wav.scp:1"),
    ("list.txt", "\n# nothing\n", r"list.txt: no audio files found"),
])
def test_malformed_lists_are_errors_naming_the_line(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=message):
        read_inputs(tmp_path / name)


def test_missing_or_audio_inputs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere: no such folder or list file"):
        read_inputs(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"one.wav is an audio file"):
        read_inputs(write_voice(tmp_path / "one.wav", 1.0, seed=0))


# Embeddings -------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size, num_workers", [(4, 2), (1, 0)])
def test_batched_embeddings_equal_one_file_at_a_time(model, audio, tmp_path, batch_size, num_workers):
    utterances = read_inputs(audio)
    summary = embed_utterances(model, utterances, tmp_path / "emb.npz", batch_size, num_workers, progress=False)
    assert summary.embedded == len(utterances) and not summary.bad
    with np.load(tmp_path / "emb.npz", allow_pickle=False) as stored:
        assert stored["ids"].tolist() == [u.id for u in utterances]
        assert stored["embeddings"].dtype == np.float32 and stored["embeddings"].shape == (len(utterances), 16)
    got = read_embeddings(tmp_path / "emb.npz")
    for utt_id, embedding in expected_embeddings(model, utterances).items():
        np.testing.assert_allclose(got[utt_id], embedding, rtol=0, atol=1e-5)
    assert not (tmp_path / "emb.parts").exists() and not (tmp_path / "emb.bad_files.txt").exists()


def test_padding_changes_no_embedding_and_the_test_would_see_it(model):
    """The property the batching relies on, with a check that the model is not
    blind to what padding would change (a lengths-ignoring batch differs)."""
    items = [torch.from_numpy(voice(s, seed=i)) for i, s in enumerate((1.0, 2.5, 4.0))]
    batch = torch.zeros(3, len(items[-1]))
    for row, item in enumerate(items):
        batch[row, : len(item)] = item
    lens = torch.tensor([len(item) / batch.shape[1] for item in items])
    together = model.encode_batch(batch, lens)[:, 0]
    alone = torch.cat([model.encode_batch(item)[:, 0] for item in items])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-5)
    assert float((model.encode_batch(batch)[0, 0] - alone[0]).abs().max()) > 1e-3


def test_one_npy_file_per_utterance(model, audio, tmp_path):
    utterances = read_inputs(audio)
    embed_utterances(model, utterances, tmp_path / "out", batch_size=3, num_workers=0, progress=False)
    for utt_id, embedding in expected_embeddings(model, utterances).items():
        np.testing.assert_allclose(np.load(tmp_path / "out" / f"{utt_id}.npy", allow_pickle=False), embedding,
                                   rtol=0, atol=1e-5)
    assert not list((tmp_path / "out").rglob("*.partial"))


def test_ids_that_would_escape_the_output_folder_are_refused(model, audio, tmp_path):
    scp = tmp_path / "wav.scp"
    scp.write_text(f"../evil {audio / 'spk2/u0.wav'}\n")
    with pytest.raises(ValueError, match=r"wav.scp:1: id '../evil' cannot be a file name"):
        embed_utterances(model, read_inputs(scp), tmp_path / "out", num_workers=0, progress=False)


# Resuming ---------------------------------------------------------------------------


class Killed(Exception):
    pass


def test_a_killed_run_resumes_where_it_stopped(model, audio, tmp_path, monkeypatch):
    utterances = read_inputs(audio)
    out = tmp_path / "emb.npz"
    calls = []
    encode = model.encode_batch
    model.fingerprint()  # computed once, before the batches counted here (it is when another test ran first)

    def dies_at_third_batch(wavs, lens, normalize=False):
        calls.append(wavs.shape[0])
        if len(calls) == 3:
            raise Killed()
        return encode(wavs, lens, normalize=normalize)

    monkeypatch.setattr(model, "encode_batch", dies_at_third_batch)
    with pytest.raises(Killed):
        embed_utterances(model, utterances, out, batch_size=3, num_workers=0, progress=False)
    assert not out.exists() and len(list((tmp_path / "emb.parts").glob("*.npz"))) == 2
    calls.clear()

    def counts(wavs, lens, normalize=False):
        calls.append(wavs.shape[0])
        return encode(wavs, lens, normalize=normalize)

    monkeypatch.setattr(model, "encode_batch", counts)
    summary = embed_utterances(model, utterances, out, batch_size=3, num_workers=0, progress=False)
    assert summary.already_done == 6 and summary.embedded == 4 and sum(calls) == 4
    monkeypatch.undo()
    got = read_embeddings(out)
    assert list(got) == [u.id for u in utterances]
    for utt_id, embedding in expected_embeddings(model, utterances).items():
        np.testing.assert_allclose(got[utt_id], embedding, rtol=0, atol=1e-5)
    summary = embed_utterances(model, utterances, out, batch_size=3, num_workers=0, progress=False)
    assert summary.embedded == 0 and summary.already_done == len(utterances)


def test_a_rerun_with_more_files_adds_them_and_keeps_the_rest(model, audio, tmp_path):
    utterances = read_inputs(audio)
    out = tmp_path / "emb.npz"
    embed_utterances(model, utterances[:4], out, num_workers=0, progress=False)
    summary = embed_utterances(model, utterances[2:], out, num_workers=0, progress=False)
    assert summary.already_done == 2 and summary.embedded == len(utterances) - 4
    assert sorted(read_embeddings(out)) == sorted(u.id for u in utterances)


def test_an_output_of_another_model_is_refused(model, audio, tmp_path):
    utterances = read_inputs(audio)[:2]
    other = TDYSpeakerRecognition.from_hparams(
        source=str(write_tiny_model_folder(tmp_path / "other", "tdy_resnet34_quarter", seed=1)))
    for out in (tmp_path / "emb.npz", tmp_path / "folder"):
        embed_utterances(model, utterances, out, num_workers=0, progress=False)
        with pytest.raises(ValueError, match="holds embeddings of another model"):
            embed_utterances(other, utterances, out, num_workers=0, progress=False)


# Bad files --------------------------------------------------------------------------


@pytest.fixture
def with_bad_files(audio, tmp_path):
    """A list of good files and files that cannot be used, with the expected reasons."""
    sf.write(tmp_path / "silence.wav", np.zeros(16000, dtype=np.float32), 16000)
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    (tmp_path / "text.wav").write_text("hello")
    good = [str(audio / "spk2/u0.wav"), str(audio / "spk1/sess/u1.wav")]
    bad = {"silence.wav": "digital silence", "empty.wav": "no samples", "text.wav": "cannot read",
           "missing.wav": "cannot read"}
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join([good[0], *bad, good[1]]) + "\n")
    return listing, bad


def test_bad_files_are_skipped_and_reported_with_the_reason(model, with_bad_files, tmp_path):
    listing, bad = with_bad_files
    summary = embed_utterances(model, read_inputs(listing), tmp_path / "emb.npz", batch_size=2, num_workers=2,
                               progress=False)
    assert summary.embedded == 2 and len(summary.bad) == 4
    report = (tmp_path / "emb.bad_files.txt").read_text().splitlines()
    assert report[0].startswith("# speechbrain-tdy embed") and len(report) == 1 + 4
    for line_number, (name, reason) in enumerate(bad.items(), start=2):
        line = next(line for line in report if line.startswith(f"{listing}:{line_number}\t"))
        assert str(tmp_path / name) in line and reason in line
    assert len(read_embeddings(tmp_path / "emb.npz")) == 2


def test_strict_stops_at_the_first_bad_file(model, with_bad_files, tmp_path):
    listing, _ = with_bad_files
    with pytest.raises(AudioError, match=str(tmp_path)):
        embed_utterances(model, read_inputs(listing), tmp_path / "emb.npz", num_workers=0, strict=True,
                         progress=False)


def test_command_line(model_folder, with_bad_files, tmp_path):
    listing, _ = with_bad_files
    command = [sys.executable, "-m", "speechbrain_tdy.embed", str(model_folder), str(listing), str(tmp_path / "emb.npz"),
               "--batch-size", "2", "--num-workers", "1"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "2 embedded, 0 already done, 4 bad" in result.stdout and "emb.bad_files.txt" in result.stdout
    result = subprocess.run(command + ["--strict"], capture_output=True, text=True)
    assert result.returncode != 0 and "error:" in result.stderr and "Traceback" not in result.stderr


def test_the_command_by_default_gives_exactly_embed_files_embeddings(model_folder, model, audio, tmp_path):
    """One embedding path: each file alone, read and embedded as ``embed_file``
    and verify.py (``embed_files``) do, so the stored embeddings are theirs exactly."""
    embed_main([str(model_folder), str(audio), str(tmp_path / "emb.npz"), "--num-workers", "0"])
    got = read_embeddings(tmp_path / "emb.npz")
    utterances = read_inputs(audio)
    through_files = embed_files(lambda wavs, lens: model.encode_batch(wavs, lens)[:, 0], [u.path for u in utterances],
                                sample_rate=model.sample_rate, min_samples=model.min_samples)
    for utterance in utterances:
        assert np.array_equal(got[utterance.id], model.embed_file(utterance.path).numpy())
        assert np.array_equal(got[utterance.id], through_files[utterance.path].numpy())
