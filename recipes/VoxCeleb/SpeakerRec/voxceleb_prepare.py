"""Data preparation for VoxCeleb1 / VoxCeleb2 speaker recognition (wav files on disk).

Writes SpeechBrain CSV files (columns ``ID, duration, wav, start, stop,
spk_id``; ``start``/``stop`` in samples, ``duration`` in seconds) in
``save_folder``:

- ``train.csv``, ``dev.csv``: utterances of the training speakers, split by
  utterance or by speaker; whole utterances (``random_segment=True``, the
  dataloader crops) or consecutive segments of ``seg_dur`` seconds. No file
  of a verification list is ever among them: by default the speakers of the
  lists are excluded altogether (open set, as VoxCeleb1-O), with
  ``exclude_trial_speakers=False`` they are kept and only the trial files
  themselves are held out (closed set: the trials score unseen recordings of
  training speakers);
- ``veri_test.csv`` (every file of the trial lists), ``enrol.csv`` and
  ``test.csv`` (the files in the enrolment / test column): whole utterances,
  for embedding the trial files.

It also writes ``prepare_options.json`` (the options and a fingerprint of the
inputs: the audio listing and the trial lists), so that a second call with the
same inputs does nothing, and, with ``on_bad_audio="skip"``, ``bad_audio.txt``.

Usage from a recipe::

    from speechbrain.utils.distributed import run_on_main
    run_on_main(prepare_voxceleb, kwargs={"data_folder": ..., "save_folder": ...,
                                          "verification_pairs_file": ".../veri_test2.txt"})

or as a script::

    python voxceleb_prepare.py DATA_FOLDER [DATA_FOLDER ...] SAVE_FOLDER --verification-pairs FILE

Each data folder holds ``wav/idXXXXX/<session>/<utt>.wav`` or is itself the
``wav`` folder. Trial lists are local files in VoxCeleb1's format (``label
enrol test`` per line, paths relative to the ``wav`` folder), e.g. the official
O / E / H lists and their cleaned versions. VoxCeleb2 is distributed as m4a:
convert it to 16 kHz wav first (the error message says how).
"""
import argparse
import csv
import hashlib
import json
import logging
import os
import random
import sys
from pathlib import Path

import soundfile as sf

from speechbrain_tdy.dataio.manifest import load_manifest
from speechbrain_tdy.dataio.trials import read_trials, speaker_of
from speechbrain_tdy.storage.atomic import (
    Replaceable,
    atomic_path,
    check_destination,
    readable_by,
    starts_with,
    write_text_atomically,
)

logger = logging.getLogger(__name__)

OPTIONS_FILE = "prepare_options.json"
BAD_AUDIO_FILE = "bad_audio.txt"
CSV_HEADER = ["ID", "duration", "wav", "start", "stop", "spk_id"]
TRIAL_CSVS = ("veri_test.csv", "enrol.csv", "test.csv")
REPORT_HEADER = "# voxceleb_prepare: audio files left out (path<TAB>reason)\n"
AUDIO_EXTENSIONS = (".wav", ".m4a")
M4A_HINT = (
    "VoxCeleb2's m4a files must be converted to 16 kHz mono wav first, e.g. one file:\n"
    "    ffmpeg -nostdin -loglevel error -i IN.m4a -ac 1 -ar 16000 -c:a pcm_s16le OUT.wav\n"
    "or a whole folder (wav files written next to the m4a files):\n"
    "    find DATA_FOLDER -name '*.m4a' -exec sh -c "
    "'ffmpeg -nostdin -loglevel error -i \"$1\" -ac 1 -ar 16000 -c:a pcm_s16le \"${1%.m4a}.wav\"' _ {} \\;"
)
_MAX_LISTED = 20  # bad files named in an error message


def prepare_voxceleb(
    data_folder,
    save_folder,
    verification_pairs_file=None,
    splits=("train", "dev"),
    split_ratio=(90, 10),
    seg_dur=3.0,
    sample_rate=16000,
    random_segment=True,
    split_speaker=False,
    skip_prep=False,
    on_bad_audio="error",
    seed=1986,
    exclude_trial_speakers=True,
):
    """Prepare the CSV files for VoxCeleb speaker recognition.

    Arguments
    ---------
    data_folder : str or list of str
        VoxCeleb1 and/or VoxCeleb2 folders, each with ``wav/idXXXXX/<session>/<utt>.wav``
        (or being the ``wav`` folder itself).
    save_folder : str
        Where the CSV files go (created).
    verification_pairs_file : str, list of str or None
        Trial list(s) whose files are held out of training and get
        ``veri_test.csv`` / ``enrol.csv`` / ``test.csv``. Trial paths are
        looked up in the data folders' ``wav`` folders; ``None`` entries are ignored.
    splits : list of str
        Training splits to write, among "train" and "dev".
    split_ratio : list of int
        Relative sizes of ``splits`` (e.g. [90, 10]); a split with a positive
        share that comes out empty is an error.
    seg_dur : float
        Segment length in seconds when ``random_segment`` is False.
    sample_rate : int
        Expected sample rate; files with another are bad audio.
    random_segment : bool
        True: one row per whole utterance (the dataloader crops randomly).
        False: consecutive ``seg_dur`` segments (an utterance shorter than
        ``seg_dur`` gives one whole-utterance row).
    split_speaker : bool
        Split train/dev by speaker instead of by utterance (within each speaker).
    skip_prep : bool
        Do nothing.
    on_bad_audio : "error" or "skip"
        What to do with missing, unreadable or empty audio, a wrong sample rate
        and m4a files: raise an error listing them, or leave them out, list
        them in ``save_folder/bad_audio.txt`` and log a warning.
    seed : int
        Seed of the train/dev split.
    exclude_trial_speakers : bool
        True (open set): leave out every speaker named in a trial list.
        False (closed set): keep them, leaving out only the files the trial
        lists name.

    Returns
    -------
    dict mapping each written CSV's name ("train", "dev", "veri_test", "enrol",
    "test") to its path. Raises FileNotFoundError for missing data folders or
    trial lists, ValueError for malformed trial lines (naming file and line),
    bad audio (with ``on_bad_audio="error"``) or bad options.
    """
    if skip_prep:
        return {}
    data_folders = [data_folder] if isinstance(data_folder, (str, os.PathLike)) else list(data_folder)
    trial_files = _as_list(verification_pairs_file)
    splits, split_ratio = list(splits), [float(r) for r in split_ratio]
    _check_options(data_folders, splits, split_ratio, seg_dur, on_bad_audio)
    save_folder = Path(save_folder)
    wav_dirs = [_wav_dir(folder) for folder in data_folders]
    missing = [str(f) for f in trial_files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError("Verification trial list(s) not found: " + ", ".join(missing))

    listing, not_files = _list_audio(wav_dirs)
    options = {
        "data_folders": [str(Path(d).resolve()) for d in wav_dirs],
        "verification_pairs_files": [str(Path(f).resolve()) for f in trial_files],
        "splits": splits, "split_ratio": split_ratio, "seg_dur": seg_dur, "sample_rate": sample_rate,
        "random_segment": random_segment, "split_speaker": split_speaker, "on_bad_audio": on_bad_audio,
        "seed": seed, "exclude_trial_speakers": bool(exclude_trial_speakers),
    }
    fingerprint = _fingerprint(listing, trial_files)
    outputs = {name: save_folder / f"{name}.csv" for name in splits}
    if trial_files:
        outputs.update({Path(name).stem: save_folder / name for name in TRIAL_CSVS})
    if _is_prepared(save_folder, options, fingerprint, outputs.values()):
        logger.info("VoxCeleb CSVs in %s are up to date, skipping preparation", save_folder)
        return {name: str(path) for name, path in outputs.items()}
    report = save_folder / BAD_AUDIO_FILE
    for path, replace in [*((path, CSV_FILE) for path in outputs.values()), (save_folder / OPTIONS_FILE, OPTIONS),
                          (report, REPORT)]:
        check_destination(path, replace)  # before any work: only this script's own files are replaced

    trials = [(t.label, t.enrol, t.test) for path in trial_files for t in read_trials(path)]
    trial_speakers = {speaker_of(p) for _, enrol, test in trials for p in (enrol, test)}
    if not trial_files:
        logger.warning("No verification list given: no speaker is excluded from training")

    by_relpath = {}
    for wav_dir, relpath, _, _ in listing:
        by_relpath.setdefault(relpath, os.path.join(wav_dir, relpath))
    bad = list(not_files)  # (path, reason)
    m4a = [path for path in by_relpath.values() if path.endswith(".m4a")]
    bad += [(path, "m4a file: convert it to 16 kHz wav") for path in m4a]

    trial_paths = sorted({p for _, enrol, test in trials for p in (enrol, test)})
    for relpath in trial_paths:
        if relpath not in by_relpath:
            bad.append((relpath, f"trial file not found under {', '.join(map(str, wav_dirs))}"))
    held_out = set(trial_paths)
    if exclude_trial_speakers:
        held_out |= {relpath for relpath in by_relpath if speaker_of(relpath) in trial_speakers}
    train_paths = sorted(path for relpath, path in by_relpath.items() if path.endswith(".wav") and relpath not in held_out)
    needed = train_paths + [by_relpath[r] for r in trial_paths if r in by_relpath and r.endswith(".wav")]
    frames = {}
    for path in needed:
        info, reason = _audio_info(path, sample_rate)
        if reason:
            bad.append((path, reason))
        else:
            frames[path] = info
    if bad:
        _handle_bad_audio(bad, m4a, on_bad_audio, save_folder)
    elif report.is_file():  # an earlier preparation's report: replaced by this one's, which lists nothing
        _write_report(report, [])

    train_paths = [p for p in train_paths if p in frames]
    if not train_paths and splits:
        raise ValueError(_nothing_to_train_on(wav_dirs, by_relpath, held_out, trial_paths, trial_files))
    rows = _split(train_paths, splits, split_ratio, split_speaker, seed)
    empty = [name for name, ratio in zip(splits, split_ratio) if ratio > 0 and not rows[name]]
    if empty:
        raise ValueError(f"Split(s) {empty} would be empty with split_ratio {split_ratio} "
                         f"({len(train_paths)} training utterances): raise their share")
    save_folder.mkdir(parents=True, exist_ok=True)
    for name in splits:
        _write_csv(outputs[name], _rows(rows[name], frames, sample_rate, seg_dur, random_segment))
        logger.info("Wrote %s (%d utterances)", outputs[name], len(rows[name]))
    if trial_files:
        usable = [(label, e, t) for label, e, t in trials if by_relpath.get(e) in frames and by_relpath.get(t) in frames]
        columns = {
            "veri_test": sorted({p for _, e, t in usable for p in (e, t)}),
            "enrol": sorted({e for _, e, _ in usable}),
            "test": sorted({t for _, _, t in usable}),
        }
        for name, relpaths in columns.items():
            paths = [by_relpath[r] for r in relpaths]
            _write_csv(outputs[name], _rows(paths, frames, sample_rate, seg_dur, random_segment=True))
    stored = {"options": options, "fingerprint": fingerprint}
    write_text_atomically(save_folder / OPTIONS_FILE, json.dumps(stored, indent=2), OPTIONS)
    return {name: str(path) for name, path in outputs.items()}


def _nothing_to_train_on(wav_dirs, by_relpath, held_out, trial_paths, trial_files):
    """The error message when no training file is left: what took them all away."""
    where = ", ".join(map(str, wav_dirs))
    wavs = [relpath for relpath in by_relpath if relpath.endswith(".wav")]
    lists = ", ".join(map(str, trial_files))
    if not wavs:
        return f"No training wav files in {where} (expected wav/idXXXXX/<session>/<utt>.wav)"
    if set(wavs) <= set(trial_paths):
        return (
            f"No training wav files left in {where}: the verification list(s) {lists} score every one of its "
            f"{len(wavs)} wav files, and trial files are never trained on. Give a list that leaves some "
            "recordings of each speaker out."
        )
    if set(wavs) <= held_out:
        speakers = {speaker_of(relpath) for relpath in wavs}
        return (
            f"No training wav files left in {where}: all {len(speakers)} speakers are named in the "
            f"verification list(s) {lists}, and the speakers of a verification list are excluded from "
            "training (open set). To train on them with only the trial files held out (closed set), set "
            "exclude_trial_speakers: False (train.py --exclude_trial_speakers=False); or give a list "
            "over other speakers."
        )
    left = sum(relpath not in held_out for relpath in wavs)
    return f"No usable training wav files in {where}: the {left} not held out for trials are all bad audio"


def check_trials_not_trained_on(trial_file, trial_wav_folder, annotations):
    """Raise ValueError if a training CSV reads a file that ``trial_file`` scores.

    Arguments
    ---------
    trial_file : str
        Trial list, paths relative to ``trial_wav_folder``.
    annotations : list of str
        CSV manifests a model was trained (or validated) on; missing ones are skipped.
    """
    scored = {os.path.realpath(os.path.join(trial_wav_folder, p)): p
              for trial in read_trials(trial_file) for p in (trial.enrol, trial.test)}
    for annotation in annotations:
        if not Path(annotation).is_file():
            continue
        trained = sorted({scored[path] for path in (os.path.realpath(row["wav"]) for row in
                                                     load_manifest(annotation).values()) if path in scored})
        if trained:
            raise ValueError(
                f"{annotation} reads {len(trained)} of the files that {trial_file} scores (e.g. {trained[0]}): "
                "the model was trained on them and their EER would mean nothing. Train with this list as "
                "verification_file (its files, and by default its speakers, are then held out of training)."
            )


def _as_list(value):
    if value is None:
        return []
    values = [value] if isinstance(value, (str, os.PathLike)) else list(value)
    return [v for v in values if v]


def _check_options(data_folders, splits, split_ratio, seg_dur, on_bad_audio):
    if on_bad_audio not in ("error", "skip"):
        raise ValueError(f"on_bad_audio must be 'error' or 'skip', got {on_bad_audio!r}")
    unknown = [s for s in splits if s not in ("train", "dev")]
    if unknown:
        raise ValueError(f"splits must be among 'train' and 'dev', got {unknown}")
    if len(split_ratio) != len(splits) or any(r < 0 for r in split_ratio) or (splits and sum(split_ratio) <= 0):
        raise ValueError(f"split_ratio {split_ratio} must give one non-negative size per split {splits}")
    if seg_dur <= 0:
        raise ValueError(f"seg_dur must be positive, got {seg_dur}")
    if not data_folders:
        raise ValueError("data_folder is empty")


def _wav_dir(folder):
    """The folder holding idXXXXX/<session>/<utt>.wav: ``folder/wav`` or ``folder`` itself."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"VoxCeleb data folder not found: {folder}")
    return folder / "wav" if (folder / "wav").is_dir() else folder


def _list_audio(wav_dirs):
    """[(wav_dir, relpath, size, mtime_ns)] of every wav/m4a file at depth
    speaker/session/utt, sorted, and [(path, reason)] of entries named like
    audio that are not files (folders, broken links)."""
    listing, not_files = [], []
    for wav_dir in wav_dirs:
        wav_dir = str(wav_dir)
        for speaker in sorted(os.scandir(wav_dir), key=lambda e: e.name):
            if not speaker.is_dir():
                continue
            for session in sorted(os.scandir(speaker.path), key=lambda e: e.name):
                if not session.is_dir():
                    continue
                for entry in sorted(os.scandir(session.path), key=lambda e: e.name):
                    if not entry.name.lower().endswith(AUDIO_EXTENSIONS):
                        continue
                    relpath = f"{speaker.name}/{session.name}/{entry.name}"
                    if entry.is_file():
                        stat = entry.stat()
                        listing.append((wav_dir, relpath, stat.st_size, stat.st_mtime_ns))
                    else:
                        reason = "a folder" if entry.is_dir() else "a broken link or not a regular file"
                        not_files.append((entry.path, f"named like audio but {reason}"))
    return listing, not_files


def _fingerprint(listing, trial_files):
    digest = hashlib.sha256()
    for wav_dir, relpath, size, mtime in listing:
        digest.update(f"{wav_dir}\0{relpath}\0{size}\0{mtime}\n".encode())
    for path in trial_files:
        digest.update(Path(path).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def _read_options(path):
    """The options and fingerprint that ``prepare_options.json`` holds; ValueError if it is not one."""
    stored = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(stored, dict) or set(stored) != {"options", "fingerprint"}:
        raise ValueError(f"{path}: not the options file of voxceleb_prepare")
    return stored


#: What a new preparation may replace: this script's own files, known by their content.
CSV_FILE = Replaceable(f"a CSV of voxceleb_prepare (header {','.join(CSV_HEADER)})",
                       starts_with(",".join(CSV_HEADER) + "\r\n"))
OPTIONS = Replaceable(f"the {OPTIONS_FILE} of voxceleb_prepare", readable_by(_read_options))
REPORT = Replaceable(f"a bad-audio report of voxceleb_prepare (first line: {REPORT_HEADER.strip()})",
                     starts_with(REPORT_HEADER))


def _is_prepared(save_folder, options, fingerprint, outputs):
    try:
        stored = _read_options(save_folder / OPTIONS_FILE)
    except (OSError, ValueError):
        return False
    return stored == {"options": options, "fingerprint": fingerprint} and all(Path(p).is_file() for p in outputs)


def _audio_info(path, sample_rate):
    """(frames, None) for a usable file, else (None, reason); reads the header only."""
    try:
        info = sf.info(path)
    except Exception as error:  # soundfile raises RuntimeError / LibsndfileError
        return None, f"unreadable audio ({error})"
    if info.frames <= 0:
        return None, "empty audio (no samples)"
    if info.samplerate != sample_rate:
        return None, f"sample rate {info.samplerate} Hz, expected {sample_rate} Hz"
    return info.frames, None


def _handle_bad_audio(bad, m4a, on_bad_audio, save_folder):
    lines = [f"{path}\t{reason}" for path, reason in bad]
    if on_bad_audio == "error":
        listed = "\n".join(lines[:_MAX_LISTED])
        more = f"\n... and {len(lines) - _MAX_LISTED} more" if len(lines) > _MAX_LISTED else ""
        hint = f"\n{M4A_HINT}" if m4a else ""
        raise ValueError(
            f"{len(bad)} bad audio file(s) (set on_bad_audio='skip' to leave them out):\n{listed}{more}{hint}"
        )
    report = save_folder / BAD_AUDIO_FILE
    _write_report(report, lines)
    logger.warning("Skipping %d bad audio file(s), listed in %s%s", len(bad), report,
                   f"\n{M4A_HINT}" if m4a else "")


def _write_report(report, lines):
    """The bad-audio report of this preparation: :data:`REPORT_HEADER`, then ``path<TAB>reason`` lines."""
    report.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(report, REPORT_HEADER + "".join(line + "\n" for line in lines), REPORT)


def _split(paths, splits, split_ratio, split_speaker, seed):
    """{split: [path]}: per speaker by utterance, or by speaker, in the given ratios."""
    rng = random.Random(seed)
    result = {name: [] for name in splits}
    if not splits:
        return result
    by_speaker = {}
    for path in paths:
        by_speaker.setdefault(Path(path).parts[-3], []).append(path)
    if split_speaker:
        speakers = sorted(by_speaker)
        rng.shuffle(speakers)
        for name, part in zip(splits, _portions(speakers, split_ratio)):
            result[name] = sorted(p for s in part for p in by_speaker[s])
        return result
    quotas = _utterance_quotas({speaker: len(items) for speaker, items in by_speaker.items()}, split_ratio, rng)
    for speaker in sorted(by_speaker):
        utterances = sorted(by_speaker[speaker])
        rng.shuffle(utterances)
        start = 0
        for name, count in zip(splits, quotas[speaker]):
            result[name].extend(utterances[start:start + count])
            start += count
    return {name: sorted(part) for name, part in result.items()}


def _portions(items, ratio):
    """Consecutive slices of ``items`` with sizes proportional to ``ratio``; the
    first part gets at least one item (training must see every speaker)."""
    total, bounds, acc = sum(ratio), [0], 0.0
    for r in ratio:
        acc += r
        bounds.append(round(len(items) * acc / total))
    if len(items) and ratio[0] > 0:
        bounds[1] = max(bounds[1], 1)
        bounds = [bounds[0]] + [max(b, bounds[1]) for b in bounds[1:]]
    return [items[bounds[i]:bounds[i + 1]] for i in range(len(ratio))]


def _utterance_quotas(counts, ratio, rng):
    """{speaker: [utterances per split]} so that each later split's total is its
    share of all utterances (2% of 6000 is 120 even when 2% of each speaker's
    24 rounds to 0): per-speaker shares rounded down, the remainder given to
    the largest fractions (ties in random order); every speaker keeps at least
    one utterance in the first split.

    >>> import random
    >>> quotas = _utterance_quotas({f"s{i}": 24 for i in range(250)}, [98, 2], random.Random(0))
    >>> sum(q[1] for q in quotas.values()), min(q[0] for q in quotas.values())
    (120, 23)
    """
    total_ratio = sum(ratio)
    quotas = {speaker: [count] + [0] * (len(ratio) - 1) for speaker, count in counts.items()}
    speakers = sorted(counts)
    rng.shuffle(speakers)
    for index in range(1, len(ratio)):
        share = {s: counts[s] * ratio[index] / total_ratio for s in speakers}
        target = round(sum(counts.values()) * ratio[index] / total_ratio)
        for s in speakers:
            quotas[s][index] = min(int(share[s]), quotas[s][0] - 1)
            quotas[s][0] -= quotas[s][index]
        by_fraction = sorted(speakers, key=lambda s: share[s] - int(share[s]), reverse=True)
        missing = target - sum(quotas[s][index] for s in speakers)
        for s in by_fraction:
            if missing <= 0:
                break
            if quotas[s][0] > 1:
                quotas[s][index] += 1
                quotas[s][0] -= 1
                missing -= 1
    return quotas


def _rows(paths, frames, sample_rate, seg_dur, random_segment):
    """CSV rows (ID, duration, wav, start, stop, spk_id) of whole utterances or segments."""
    rows = []
    seg = int(round(seg_dur * sample_rate))
    for path in paths:
        speaker, session, name = Path(path).parts[-3:]
        utt_id = f"{speaker}--{session}--{Path(name).stem}"
        n = frames[path]
        if random_segment or n <= seg:
            spans = [(0, n)]
        else:
            spans = [(start, start + seg) for start in range(0, n - seg + 1, seg)]
        for start, stop in spans:
            row_id = utt_id if len(spans) == 1 and start == 0 and stop == n else f"{utt_id}_{start}_{stop}"
            rows.append([row_id, f"{(stop - start) / sample_rate:.3f}", os.path.abspath(path), start, stop, speaker])
    return rows


def _write_csv(path, rows):
    with atomic_path(path, CSV_FILE) as partial, open(partial, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(CSV_HEADER)
        writer.writerows(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write SpeechBrain CSVs for VoxCeleb speaker recognition.")
    parser.add_argument("data_folder", nargs="+", help="VoxCeleb folder(s) with wav/idXXXXX/<session>/<utt>.wav")
    parser.add_argument("save_folder", help="where the CSV files go")
    parser.add_argument("--verification-pairs", action="append", default=None, metavar="FILE",
                        help="trial list whose files (and, unless --keep-trial-speakers, speakers) are "
                             "held out of training (repeatable)")
    parser.add_argument("--splits", nargs="*", default=["train", "dev"], help="default: train dev")
    parser.add_argument("--split-ratio", type=float, nargs="*", default=[90, 10], help="default: 90 10")
    parser.add_argument("--split-speaker", action="store_true", help="split train/dev by speaker")
    parser.add_argument("--fixed-segments", action="store_true",
                        help="write seg-dur segments instead of whole utterances (random_segment=False)")
    parser.add_argument("--seg-dur", type=float, default=3.0, help="segment length in seconds (default 3)")
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--on-bad-audio", choices=["error", "skip"], default="error")
    parser.add_argument("--seed", type=int, default=1986)
    parser.add_argument("--keep-trial-speakers", action="store_true",
                        help="closed set: train on the trial lists' speakers too, holding out only the trial files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    outputs = prepare_voxceleb(
        args.data_folder, args.save_folder, args.verification_pairs, splits=args.splits,
        split_ratio=args.split_ratio, seg_dur=args.seg_dur, sample_rate=args.sample_rate,
        random_segment=not args.fixed_segments, split_speaker=args.split_speaker,
        on_bad_audio=args.on_bad_audio, seed=args.seed, exclude_trial_speakers=not args.keep_trial_speakers,
    )
    for name, path in outputs.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
