"""Samplers, trial lists and audio reading used by the recipe."""
import random

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given
from hypothesis import strategies as st

from speechbrain_tdy.dataio.audio import AudioError, evenly_spaced_crops, random_crop, read_segment
from speechbrain_tdy.dataio.sampler import SpeakerBalancedBatchSampler
from speechbrain_tdy.dataio.trials import parse_trial_line, read_trials


def check_batches(batches, speakers, n_speakers, n_per_speaker):
    for batch in batches:
        assert len(batch) == n_speakers * n_per_speaker
        labels = [speakers[i] for i in batch]
        groups = [labels[i : i + n_per_speaker] for i in range(0, len(labels), n_per_speaker)]
        assert all(len(set(g)) == 1 for g in groups), "a speaker's utterances are consecutive"
        assert len({g[0] for g in groups}) == n_speakers, "no speaker twice in a batch"


@given(
    counts=st.lists(st.integers(min_value=0, max_value=9), min_size=4, max_size=30),
    n_speakers=st.integers(min_value=2, max_value=4),
    n_per_speaker=st.integers(min_value=2, max_value=3),
    epoch=st.integers(min_value=0, max_value=5),
)
def test_batches_are_speaker_balanced_and_fixed_in_number(counts, n_speakers, n_per_speaker, epoch):
    speakers = [f"spk{s}" for s, count in enumerate(counts) for _ in range(count)]
    eligible = sum(1 for c in counts if c >= n_per_speaker)
    if eligible < n_speakers:
        with pytest.raises(ValueError, match="needs"):
            SpeakerBalancedBatchSampler(speakers, n_speakers, n_per_speaker)
        return
    sampler = SpeakerBalancedBatchSampler(speakers, n_speakers, n_per_speaker)
    sampler.set_epoch(epoch)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    check_batches(batches, speakers, n_speakers, n_per_speaker)


def test_batches_are_reproducible_per_epoch_and_change_between_epochs():
    speakers = [f"s{i % 12}" for i in range(240)]
    first, second = (SpeakerBalancedBatchSampler(speakers, 4, seed=7) for _ in range(2))
    for sampler in (first, second):
        sampler.set_epoch(3)
    assert list(first) == list(second)
    second.set_epoch(4)
    assert list(first) != list(second)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_trial_parser_accepts_exactly_label_enrol_test(line):
    fields = line.split()
    valid = len(fields) == 3 and fields[0] in ("0", "1")
    if valid:
        trial = parse_trial_line(line, "list.txt", 7)
        assert (trial.label, trial.enrol, trial.test) == (int(fields[0]), fields[1], fields[2])
    else:
        with pytest.raises(ValueError, match=r"^list\.txt:7: "):
            parse_trial_line(line, "list.txt", 7)


def test_read_trials_names_file_and_line(tmp_path):
    path = tmp_path / "veri.txt"
    path.write_text("1 a/b/1.wav a/c/2.wav\n\n0 a/b/1.wav x/y/3.wav\n2 a/b/1.wav x/y/3.wav\n")
    with pytest.raises(ValueError, match=r"veri\.txt:4: label must be 0 or 1, got '2'"):
        read_trials(path)
    path.write_text("1 a/b/1.wav a/c/2.wav\n\n0 a/b/1.wav x/y/3.wav\n")
    assert [t.label for t in read_trials(path)] == [1, 0]
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_trials(tmp_path / "missing.txt")


def write_wav(path, samples, rate=16000, channels=1):
    data = np.random.default_rng(0).uniform(-0.5, 0.5, (samples, channels)).astype(np.float32)
    sf.write(path, data, rate, subtype="PCM_16")
    return data


def test_random_crop_reads_the_requested_window(tmp_path):
    data = write_wav(tmp_path / "a.wav", 16000)
    crop = random_crop(str(tmp_path / "a.wav"), 4000, 1000, 9000, random.Random(0))
    assert crop.shape == (4000,)
    matches = [o for o in range(1000, 5001) if np.allclose(crop.numpy(), data[o : o + 4000, 0], atol=1e-4)]
    assert matches, "the crop is a window of the segment"


def test_short_files_are_wrapped_and_stereo_is_mixed_down(tmp_path):
    data = write_wav(tmp_path / "short.wav", 3000, channels=2)
    crop = random_crop(str(tmp_path / "short.wav"), 7000, 0, 3000, random.Random(0))
    mono = data.mean(axis=1)
    np.testing.assert_allclose(crop[:3000].numpy(), mono, atol=1e-4)
    np.testing.assert_allclose(crop[3000:6000].numpy(), mono, atol=1e-4)


def test_evaluation_crops_cover_the_file_evenly():
    crops = evenly_spaced_crops(torch.arange(1000.0), 100, num_crops=10)
    assert crops.shape == (10, 100)
    assert crops[0, 0] == 0 and crops[-1, -1] == 999


@pytest.mark.parametrize(
    "content,message",
    [("rate", "sample rate 8000 Hz, expected 16000 Hz"), ("garbage", "cannot read audio"), ("empty", "no samples")],
)
def test_bad_audio_is_named(tmp_path, content, message):
    path = tmp_path / f"{content}.wav"
    if content == "rate":
        write_wav(path, 800, rate=8000)
    elif content == "garbage":
        path.write_bytes(b"RIFF not really a wave file")
    else:
        sf.write(path, np.zeros((0, 1), dtype=np.float32), 16000)
    with pytest.raises(AudioError, match=f"{content}.wav: {message}"):
        read_segment(str(path))


def test_verification_refuses_silent_and_nan_files(tmp_path):
    from speechbrain_tdy.embedding.files import embed_files

    sf.write(tmp_path / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    samples = np.ones(16000, dtype=np.float32)
    samples[5] = np.nan
    sf.write(tmp_path / "nan.wav", samples, 16000, subtype="FLOAT")
    for name, message in (("silent.wav", "digital silence"), ("nan.wav", "contains NaN or infinite")):
        with pytest.raises(AudioError, match=f"{name}: {message}"):
            embed_files(lambda wavs, lens: wavs[:, :4], [name], tmp_path)


from speechbrain_tdy.dataio.manifest import load_manifest  # noqa: E402

HEADER = "ID,duration,wav,start,stop,spk_id\n"
cell = st.text(alphabet="abc019.-", min_size=0, max_size=6)


@given(rows=st.lists(st.lists(cell, min_size=5, max_size=7), min_size=1, max_size=6))
def test_manifest_parser_reports_the_first_bad_line(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("csv") / "train.csv"
    path.write_text(HEADER + "".join(",".join(r) + "\n" for r in rows))
    expected_error = None
    seen = set()
    for line, fields in enumerate(rows, start=2):
        problem = None
        if len(fields) != 6:
            problem = "fields"
        else:
            try:
                float(fields[1])
                start, stop = int(fields[3]), int(fields[4])
                if stop <= start:
                    problem = "stop"
                elif fields[0] in seen:
                    problem = "duplicate"
            except ValueError:
                problem = "number"
            seen.add(fields[0])
        if problem:
            expected_error = line
            break
    if expected_error is None:
        assert len(load_manifest(path)) == len(rows)
    else:
        with pytest.raises(ValueError, match=rf"train\.csv:{expected_error}: "):
            load_manifest(path)


def test_manifest_needs_its_columns(tmp_path):
    path = tmp_path / "dev.csv"
    path.write_text("ID,duration,wav\nx,1.0,a.wav\n")
    with pytest.raises(ValueError, match=r"dev\.csv:1: missing column\(s\) start, stop, spk_id"):
        load_manifest(path)
