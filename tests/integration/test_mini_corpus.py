"""The synthetic VoxCeleb-like corpus: layout, formats, labels, trials, determinism, speed."""
import json
import subprocess
import sys
from pathlib import Path

import mini_corpus
import numpy as np
import pytest
import soundfile as sf
from helpers import TOOLS
from mini_corpus import HOP, PHONE_CLASS, SAMPLE_RATE, generate_corpus

from speechbrain_tdy.analysis.phone_labels import PHONE_CLASSES, read_phone_labels

SMALL = dict(n_speakers=6, n_utterances=4, durations=(2.0, 3.0), sessions=(2, 3))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    return out, generate_corpus(out, seed=3, **SMALL)


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def _trials(path):
    return [line.split() for line in Path(path).read_text().splitlines()]


def test_layout_and_wav_format(corpus):
    out, summary = corpus
    wavs = sorted((out / "wav").glob("id*/*/*.wav"))
    assert len(wavs) == 6 * 4 == summary["n_files"]
    speakers = sorted(p.name for p in (out / "wav").iterdir())
    assert speakers == [f"id{i:05d}" for i in range(1, 7)]
    for wav in wavs:
        session = wav.parent.name
        assert len(session) == 11 and not session.startswith("-")
        assert len(wav.stem) == 5 and wav.stem.isdigit()
        info = sf.info(wav)
        assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
        assert 2.0 * SAMPLE_RATE - HOP <= info.frames <= 3.0 * SAMPLE_RATE + HOP
        audio, _ = sf.read(wav, dtype="int16")
        assert np.abs(audio).max() > 100
    for speaker in (out / "wav").iterdir():
        assert 2 <= len(list(speaker.iterdir())) <= 3
    info = json.loads((out / "corpus.json").read_text())
    assert info["seed"] == 3 and info["n_speakers"] == 6
    assert not list(out.rglob("*.partial*"))


def test_phone_labels_match_audio(corpus):
    out, _ = corpus
    seen = set()
    for wav in sorted((out / "wav").glob("id*/*/*.wav")):
        labels = read_phone_labels(wav.with_suffix(".phn"))
        assert len(labels) == sf.info(wav).frames // HOP
        for phone, phone_class in labels:
            assert PHONE_CLASS[phone] == phone_class and phone_class in PHONE_CLASSES
        seen.update(c for _, c in labels)
    assert seen == set(PHONE_CLASSES)


def test_read_phone_labels_rejects_bad_lines(tmp_path):
    path = tmp_path / "x.phn"
    path.write_text("aa vowel\nzz vowl\n")
    with pytest.raises(ValueError, match=r"x.phn:2"):
        read_phone_labels(path)


def test_speaker_split_and_trials(corpus):
    out, summary = corpus
    split = summary["speakers"]
    train, dev, test = (set(split[k]) for k in ("train", "dev", "test"))
    assert train and dev and test and not (train & dev or train & test or dev & test)
    assert train | dev | test == {f"id{i:05d}" for i in range(1, 7)}
    for name, held_out in (("veri_test.txt", test), ("veri_dev.txt", dev)):
        trials = _trials(out / name)
        assert trials and all(len(t) == 3 and t[0] in "01" for t in trials)
        labels = [int(t[0]) for t in trials]
        assert sum(labels) == len(labels) - sum(labels)  # balanced
        assert len({frozenset(t[1:]) for t in trials}) == len(trials)  # no repeated pair
        for label, enrol, test_path in trials:
            assert (out / "wav" / enrol).is_file() and (out / "wav" / test_path).is_file()
            speakers = {enrol.split("/")[0], test_path.split("/")[0]}
            assert speakers <= held_out
            assert (len(speakers) == 1) == (label == "1")
        cross = [t for t in trials if t[0] == "1" and t[1].split("/")[1] != t[2].split("/")[1]]
        assert 2 * len(cross) >= sum(labels)  # cross-session targets first


def test_deterministic(corpus, tmp_path):
    out, _ = corpus
    calls = []  # same files from parallel writers, progress reported speaker by speaker
    generate_corpus(tmp_path / "same", seed=3, workers=2, progress=lambda *call: calls.append(call), **SMALL)
    assert calls == [(done, 6) for done in range(1, 7)]
    generate_corpus(tmp_path / "other", seed=4, **SMALL)
    reference = _files(out)
    same = _files(tmp_path / "same")
    assert same.keys() == reference.keys()
    assert all(same[k] == reference[k] for k in reference)
    other = _files(tmp_path / "other")
    wav = sorted(k for k in reference if k.suffix == ".wav")
    assert sorted(k for k in other if k.suffix == ".wav") != wav or any(other[k] != reference[k] for k in wav)


@pytest.mark.parametrize("main_script", ["mini_corpus", "demo"])
def test_writer_processes_start_without_torch(main_script):
    """Each spawned writer re-imports the script that started it (the corpus
    command or the demo): torch would add seconds per writer."""
    code = f"import sys, {main_script}; print('torch' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", code], cwd=TOOLS, capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "False"


def test_difficulty_knobs_and_cli(tmp_path, capsys):
    mini_corpus.main([str(tmp_path), "--speakers", "6", "--utterances", "2", "--durations", "1", "1.5",
                      "--channel-strength", "1.5", "--speaker-spread", "0.5", "--seed", "1"])
    printed = capsys.readouterr().out
    assert "faster than real time" in printed
    info = json.loads((tmp_path / "corpus.json").read_text())
    assert info["channel_strength"] == 1.5 and info["speaker_spread"] == 0.5
    with pytest.raises(ValueError, match="speakers"):
        generate_corpus(tmp_path / "few", n_speakers=4)


def test_baselines_score_the_trial_list(tiny_corpus):
    eers = mini_corpus.baseline_eers(tiny_corpus)
    assert eers["n_trials"] == len((tiny_corpus / "veri_test.txt").read_text().splitlines())
    assert 0 <= eers["mean_logmel_cosine"] <= 100 and 0 <= eers["lda_logmel_stats"] <= 100
