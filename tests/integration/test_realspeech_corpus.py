"""tools/realspeech_corpus.py on a tiny fake realspeech folder laid out like the
shared one: VoxCeleb's layout, the speaker splits, balanced trial lists that
voxceleb_prepare.py accepts, and one error line for a bad file."""
import csv
import sys
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
from helpers import RECIPE, voice
from realspeech_corpus import build_corpus, main

sys.path.insert(0, str(RECIPE))
from voxceleb_prepare import prepare_voxceleb  # noqa: E402

TRAIN_SPEAKERS = [19, 26, 27, 32, 39, 40]  # train-clean-100: one recording each
TEST_SPEAKERS = [1688, 2414, 3005]  # test-other: 3 recordings each
FSDD_SPEAKERS = ["george", "jackson", "theo"]
FSDD_TAKES = [0, 1, 2, 30, 31, 40, 41]
DIGIT_SECONDS = 0.25


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A fake REALSPEECH_DIR: flac LibriSpeech at 16 kHz (one recording of 1 s, the others 7 s),
    two digits of FSDD at 8 kHz, and the text files the shared folder has beside the audio."""
    root = tmp_path_factory.mktemp("realspeech")
    train = root / "librispeech" / "train-clean-100"
    train.mkdir(parents=True)
    for i, speaker in enumerate(TRAIN_SPEAKERS):
        sf.write(train / f"{speaker}-{100 + i}-0000.flac", voice(1.0 if i == 0 else 7.0, speaker), 16000)
    test = root / "librispeech" / "test-other"
    for speaker in TEST_SPEAKERS:
        (test / str(speaker)).mkdir(parents=True)
        for utt in range(3):
            name = f"{speaker}-{500 + utt % 2}-{utt:04d}.flac"
            sf.write(test / str(speaker) / name, voice(2.0, speaker + utt), 16000)
    (test / "LICENSE.TXT").write_text("CC BY 4.0\n")
    (test / "SPEAKERS.TXT").write_text("; speakers\n")
    fsdd = root / "fsdd" / "recordings"
    fsdd.mkdir(parents=True)
    for s, speaker in enumerate(FSDD_SPEAKERS):
        for take in FSDD_TAKES:
            for digit in range(2):
                sf.write(fsdd / f"{digit}_{speaker}_{take}.wav", voice(DIGIT_SECONDS, 100 * s + digit, 8000), 8000,
                         subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def corpora(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("corpora")
    return {name: (out / name, build_corpus(source, out / name, name)) for name in ("librispeech", "fsdd")}


def trials(path):
    return [line.split() for line in path.read_text().splitlines()]


def speakers_of(rows):
    return {p.split("/")[0] for row in rows for p in row[1:]}


@pytest.mark.parametrize("name", ["librispeech", "fsdd"])
def test_voxcelebs_layout_and_balanced_trials(corpora, name):
    corpus, summary = corpora[name]
    wavs = sorted((corpus / "wav").rglob("*"))
    files = [p for p in wavs if p.is_file()]
    assert files and all(p.suffix == ".wav" and len(p.relative_to(corpus / "wav").parts) == 3 for p in files)
    assert all(p.parts[-3].startswith("id") and len(p.parts[-3]) == 7 for p in files)
    for path in files:
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert not [p for p in wavs if ".partial" in p.name]
    for split in ("dev", "test"):
        rows = trials(corpus / f"veri_{split}.txt")
        assert rows and all(len(row) == 3 for row in rows)
        labels = Counter(row[0] for row in rows)
        assert set(labels) == {"0", "1"} and labels["0"] == labels["1"]  # every target pair, as many non-targets
        assert all((row[0] == "1") == (row[1].split("/")[0] == row[2].split("/")[0]) for row in rows)
        assert all((corpus / "wav" / p).is_file() for row in rows for p in row[1:])
        assert speakers_of(rows) == set(summary["speakers"][split])


def test_librispeech_is_open_set_with_segmented_training_speakers(corpora):
    corpus, summary = corpora["librispeech"]
    train, dev, test = (set(summary["speakers"][s]) for s in ("train", "dev", "test"))
    assert test == {f"id{s:05d}" for s in TEST_SPEAKERS}
    assert train | dev == {f"id{s:05d}" for s in TRAIN_SPEAKERS}
    assert len(dev) == len(TRAIN_SPEAKERS) // 2 and not train & dev
    for speaker in train | dev:
        segments = list((corpus / "wav" / speaker).rglob("*.wav"))
        recording = 1.0 if speaker == f"id{TRAIN_SPEAKERS[0]:05d}" else 7.0
        assert len(segments) == max(2, round(recording / 3))  # at least two utterances per speaker
        assert sum(sf.info(p).frames for p in segments) == int(recording * 16000)
    assert {p.parent.name for p in (corpus / "wav" / "id01688").rglob("*.wav")} == {"500", "501"}  # session = chapter


def test_fsdd_is_closed_set_with_one_utterance_per_take(corpora):
    corpus, summary = corpora["fsdd"]
    speakers = {"id90001", "id90002", "id90003"}
    assert set(summary["speakers"]["train"]) == set(summary["speakers"]["test"]) == speakers
    takes = {split: {int(p.split("/")[2][:-4]) for row in trials(corpus / f"veri_{split}.txt") for p in row[1:]}
             for split in ("dev", "test")}
    assert takes == {"dev": {30, 31}, "test": {40, 41}}
    assert sorted(int(p.stem) for p in (corpus / "wav" / "id90001").rglob("*.wav")) == FSDD_TAKES
    two_digits_and_a_pause = 2 * int(DIGIT_SECONDS * 16000) + int(0.1 * 16000)
    assert sf.info(corpus / "wav" / "id90001" / "george" / "00040.wav").frames == two_digits_and_a_pause


def test_the_same_seed_writes_the_same_trial_lists(source, corpora, tmp_path):
    build_corpus(source, tmp_path, "fsdd")
    corpus, _ = corpora["fsdd"]
    for name in ("veri_dev.txt", "veri_test.txt"):
        assert (tmp_path / name).read_text() == (corpus / name).read_text()


@pytest.mark.parametrize("name, exclude", [("librispeech", True), ("fsdd", False)])
def test_voxceleb_prepare_accepts_the_corpus(corpora, name, exclude, tmp_path):
    corpus, summary = corpora[name]
    outputs = prepare_voxceleb(corpus, tmp_path, [corpus / "veri_test.txt", corpus / "veri_dev.txt"],
                               split_ratio=[90, 10], exclude_trial_speakers=exclude)
    with open(outputs["train"], newline="") as stream:
        train = list(csv.DictReader(stream))
    assert {row["spk_id"] for row in train} == set(summary["speakers"]["train"])
    trial_files = {p for s in ("dev", "test") for row in trials(corpus / f"veri_{s}.txt") for p in row[1:]}
    assert not {"/".join(row["wav"].split("/")[-3:]) for row in train} & trial_files


def test_a_bad_file_is_named_in_one_error_line(source, tmp_path, capsys):
    bad = tmp_path / "realspeech"
    (bad / "fsdd" / "recordings").mkdir(parents=True)
    for digit in range(2):
        sf.write(bad / "fsdd" / "recordings" / f"{digit}_theo_40.wav", np.zeros(800, np.float32), 8000)
    broken = bad / "fsdd" / "recordings" / "0_theo_41.wav"
    broken.write_bytes(b"not a wav file")
    with pytest.raises(SystemExit) as exit_info:
        main([str(bad), str(tmp_path / "out"), "--set", "fsdd"])
    assert str(exit_info.value).startswith(f"error: {broken}: cannot read audio")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "nowhere"), str(tmp_path / "out"), "--set", "librispeech"])
    missing = tmp_path / "nowhere" / "librispeech" / "train-clean-100"
    assert str(exit_info.value).startswith(f"error: {missing}: not found")
