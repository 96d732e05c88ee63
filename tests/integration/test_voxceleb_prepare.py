"""recipes/VoxCeleb/SpeakerRec/voxceleb_prepare.py on the mini corpus: CSVs, splits,
idempotency and every kind of bad input, in both on_bad_audio modes."""
import csv
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mini_corpus import generate_corpus

from helpers import RECIPE

sys.path.insert(0, str(RECIPE))
from voxceleb_prepare import prepare_voxceleb  # noqa: E402


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    out = tmp_path_factory.mktemp("mini")
    generate_corpus(out, n_speakers=6, n_utterances=4, seed=0, durations=(2.0, 3.0), sessions=(2, 2))
    return out


@pytest.fixture
def corpus(pristine, tmp_path):
    out = tmp_path / "corpus"
    shutil.copytree(pristine, out)
    return out


def _rows(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def _speakers(rows):
    return {row["spk_id"] for row in rows}


def _prepare(corpus, save, **kwargs):
    kwargs.setdefault("verification_pairs_file", [corpus / "veri_test.txt", corpus / "veri_dev.txt", None])
    kwargs.setdefault("split_ratio", [75, 25])
    return prepare_voxceleb(corpus, save, **kwargs)


def test_csvs_on_mini_corpus(corpus, tmp_path):
    outputs = _prepare(corpus, tmp_path / "save")
    assert set(outputs) == {"train", "dev", "veri_test", "enrol", "test"}
    train, dev = _rows(outputs["train"]), _rows(outputs["dev"])
    assert list(train[0]) == ["ID", "duration", "wav", "start", "stop", "spk_id"]
    held_out = {p.split("/")[0] for name in ("veri_test.txt", "veri_dev.txt")
                for line in (corpus / name).read_text().splitlines() for p in line.split()[1:]}
    assert _speakers(train) == _speakers(dev) == {"id00001", "id00002"}
    assert not (_speakers(train) | _speakers(dev)) & held_out
    assert (len(train), len(dev)) == (6, 2)  # 3:1 of each speaker's 4 utterances
    assert not {r["ID"] for r in train} & {r["ID"] for r in dev}
    for row in train + dev:
        frames = sf.info(row["wav"]).frames
        assert Path(row["wav"]).is_absolute() and row["wav"].split("/")[-3] == row["spk_id"]
        assert (int(row["start"]), int(row["stop"])) == (0, frames)
        assert float(row["duration"]) == pytest.approx(frames / 16000, abs=1e-3)
    trial_files = {p for line in (corpus / "veri_test.txt").read_text().splitlines() for p in line.split()[1:]}
    veri = _rows(outputs["veri_test"])
    assert {"/".join(r["wav"].split("/")[-3:]) for r in veri} >= trial_files
    assert {r["ID"] for r in _rows(outputs["enrol"])} | {r["ID"] for r in _rows(outputs["test"])} == {
        r["ID"] for r in veri}


def test_fixed_segments_and_speaker_split(corpus, tmp_path):
    outputs = _prepare(corpus, tmp_path / "seg", random_segment=False, seg_dur=0.5)
    for row in _rows(outputs["train"]):
        assert int(row["stop"]) - int(row["start"]) == 8000 and float(row["duration"]) == 0.5
        assert int(row["stop"]) <= sf.info(row["wav"]).frames
    outputs = _prepare(corpus, tmp_path / "spk", split_speaker=True, split_ratio=[50, 50])
    train, dev = _rows(outputs["train"]), _rows(outputs["dev"])
    assert len(_speakers(train)) == len(_speakers(dev)) == 1 and not _speakers(train) & _speakers(dev)


def test_idempotent_and_rerun_on_change(corpus, tmp_path):
    save = tmp_path / "save"
    outputs = _prepare(corpus, save)
    stamps = {p: Path(p).stat().st_mtime_ns for p in outputs.values()}
    assert _prepare(corpus, save) == outputs
    assert {p: Path(p).stat().st_mtime_ns for p in outputs.values()} == stamps
    new = corpus / "wav" / "id00001" / "newsession0" / "00001.wav"
    new.parent.mkdir()
    sf.write(new, np.zeros(16000, dtype="int16"), 16000, subtype="PCM_16")
    _prepare(corpus, save)
    assert any(str(new) in row["wav"] for name in ("train", "dev") for row in _rows(outputs[name]))
    before = Path(outputs["train"]).stat().st_mtime_ns
    _prepare(corpus, save, split_ratio=[50, 50])  # other options: prepared again
    assert Path(outputs["train"]).stat().st_mtime_ns != before
    assert prepare_voxceleb(corpus, tmp_path / "skipped", skip_prep=True) == {}
    assert not (tmp_path / "skipped").exists()


def test_accepts_wav_folder_and_several_folders(corpus, tmp_path):
    outputs = prepare_voxceleb([corpus / "wav"], tmp_path / "a", corpus / "veri_test.txt", split_ratio=[75, 25])
    assert _speakers(_rows(outputs["train"])) == {"id00001", "id00002", "id00003", "id00004"}  # dev speakers kept
    other = tmp_path / "vox2" / "wav" / "id09999" / "abcdefghijk"
    other.mkdir(parents=True)
    sf.write(other / "00001.wav", np.zeros(20000, dtype="int16"), 16000, subtype="PCM_16")
    outputs = prepare_voxceleb([corpus, tmp_path / "vox2"], tmp_path / "b", corpus / "veri_test.txt", splits=["train"],
                               split_ratio=[1])
    assert "id09999" in _speakers(_rows(outputs["train"]))


def test_missing_trial_file(corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        prepare_voxceleb(corpus, tmp_path / "s", [corpus / "veri_test.txt", corpus / "nope.txt"])


def test_malformed_trial_line(corpus, tmp_path):
    trials = corpus / "bad_trials.txt"
    lines = (corpus / "veri_test.txt").read_text().splitlines()
    trials.write_text("\n".join(lines[:2] + ["1 only_two_fields.wav"] + lines[2:]) + "\n")
    with pytest.raises(ValueError, match=r"bad_trials.txt:3"):
        prepare_voxceleb(corpus, tmp_path / "s", trials)
    trials.write_text("2 a/b/c.wav a/b/d.wav\n")
    with pytest.raises(ValueError, match=r"bad_trials.txt:1"):
        prepare_voxceleb(corpus, tmp_path / "s", trials)


def _break(corpus, kind):
    """Damage one training file of id00001 in the given way; returns its path."""
    target = sorted((corpus / "wav" / "id00001").rglob("*.wav"))[0]
    if kind == "empty":
        sf.write(target, np.zeros(0, dtype="int16"), 16000, subtype="PCM_16")
    elif kind == "zero-bytes":
        target.write_bytes(b"")
    elif kind == "corrupt":
        target.write_bytes(np.random.default_rng(0).bytes(4000))
    elif kind == "rate":
        sf.write(target, np.zeros(8000, dtype="int16"), 8000, subtype="PCM_16")
    elif kind == "m4a":
        target = target.with_name("00009.m4a")
        target.write_bytes(b"\0\0\0 ftypM4A ")
    return target


@pytest.mark.parametrize("kind, reason", [("empty", "empty"), ("zero-bytes", "unreadable"),
                                          ("corrupt", "unreadable"), ("rate", "sample rate 8000"),
                                          ("m4a", "m4a")])
def test_bad_audio(corpus, tmp_path, kind, reason, caplog):
    bad = _break(corpus, kind)
    with pytest.raises(ValueError, match=reason) as error:
        _prepare(corpus, tmp_path / "error")
    assert str(bad) in str(error.value)
    if kind == "m4a":
        assert "ffmpeg" in str(error.value)
    assert not (tmp_path / "error" / "train.csv").exists()

    outputs = _prepare(corpus, tmp_path / "skip", on_bad_audio="skip")
    report = (tmp_path / "skip" / "bad_audio.txt").read_text()
    assert str(bad) in report and reason in report
    assert str(bad) not in {row["wav"] for row in _rows(outputs["train"]) + _rows(outputs["dev"])}
    assert len(_rows(outputs["train"])) + len(_rows(outputs["dev"])) == (8 if kind == "m4a" else 7)
    assert "bad audio" in caplog.text


def test_missing_trial_audio(corpus, tmp_path):
    trials = corpus / "veri_test.txt"
    missing = trials.read_text().splitlines()[0].split()[1]
    (corpus / "wav" / missing).unlink()
    with pytest.raises(ValueError, match=missing):
        prepare_voxceleb(corpus, tmp_path / "e", trials, split_ratio=[75, 25])
    outputs = prepare_voxceleb(corpus, tmp_path / "s", trials, on_bad_audio="skip", split_ratio=[75, 25])
    assert missing in (tmp_path / "s" / "bad_audio.txt").read_text()
    assert all(not row["wav"].endswith(missing) for row in _rows(outputs["veri_test"]))


def test_bad_options(corpus, tmp_path):
    with pytest.raises(ValueError, match="on_bad_audio"):
        prepare_voxceleb(corpus, tmp_path / "s", on_bad_audio="ignore")
    with pytest.raises(ValueError, match="split_ratio"):
        prepare_voxceleb(corpus, tmp_path / "s", split_ratio=[100])
    with pytest.raises(ValueError, match="empty"):
        prepare_voxceleb(corpus, tmp_path / "s", split_ratio=[99, 1])
    with pytest.raises(FileNotFoundError, match="not found"):
        prepare_voxceleb(tmp_path / "nowhere", tmp_path / "s")


def test_script(corpus, tmp_path, capsys):
    import voxceleb_prepare

    voxceleb_prepare.main([str(corpus), str(tmp_path / "cli"), "--verification-pairs", str(corpus / "veri_test.txt"),
                           "--split-ratio", "75", "25"])
    assert "train.csv" in capsys.readouterr().out
    assert (tmp_path / "cli" / "veri_test.csv").is_file()


def _wavs_by_speaker(corpus):
    by_speaker = {}
    for path in sorted((corpus / "wav").rglob("*.wav")):
        by_speaker.setdefault(path.parts[-3], []).append(str(path.relative_to(corpus / "wav")))
    return by_speaker


def _relpath(row):
    return "/".join(row["wav"].split("/")[-3:])


def test_closed_set_keeps_trial_speakers_but_never_their_trial_files(corpus, tmp_path):
    by_speaker = _wavs_by_speaker(corpus)  # 6 speakers x 4 files
    closed = corpus / "closed.txt"  # 2 of each speaker's files, one target and one non-target trial
    speakers = sorted(by_speaker)
    closed.write_text("".join(f"1 {by_speaker[s][0]} {by_speaker[s][1]}\n0 {by_speaker[s][0]} {by_speaker[o][1]}\n"
                              for s, o in zip(speakers, speakers[1:] + speakers[:1])))
    outputs = _prepare(corpus, tmp_path / "closed", verification_pairs_file=closed, exclude_trial_speakers=False,
                       split_ratio=[50, 50])
    rows = _rows(outputs["train"]) + _rows(outputs["dev"])
    trained = {_relpath(row) for row in rows}
    assert trained == {path for files in by_speaker.values() for path in files[2:]}
    assert _speakers(rows) == set(speakers)
    # the default (open set) leaves the trial speakers out altogether
    with pytest.raises(ValueError, match="all 6 speakers are named in the verification list") as error:
        _prepare(corpus, tmp_path / "open", verification_pairs_file=closed)
    assert "closed.txt" in str(error.value) and "exclude_trial_speakers: False" in str(error.value)


def test_no_file_of_a_trial_list_is_trained_on_in_either_mode(corpus, tmp_path):
    lists = [corpus / "veri_test.txt", corpus / "veri_dev.txt"]
    trial_files = {p for path in lists for line in path.read_text().splitlines() for p in line.split()[1:]}
    for exclude in (True, False):
        outputs = _prepare(corpus, tmp_path / str(exclude), exclude_trial_speakers=exclude)
        trained = {_relpath(row) for name in ("train", "dev") for row in _rows(outputs[name])}
        assert trained and not trained & trial_files


def test_a_list_scoring_every_file_is_an_error_naming_the_cause(corpus, tmp_path):
    wavs = sorted(path for files in _wavs_by_speaker(corpus).values() for path in files)
    every_file = corpus / "every_file.txt"
    every_file.write_text("".join(f"1 {a} {b}\n" for a, b in zip(wavs[::2], wavs[1::2])))
    for exclude in (True, False):
        with pytest.raises(ValueError, match="score every one of its 24 wav files") as error:
            prepare_voxceleb(corpus, tmp_path / "s", every_file, exclude_trial_speakers=exclude)
        assert "every_file.txt" in str(error.value)
