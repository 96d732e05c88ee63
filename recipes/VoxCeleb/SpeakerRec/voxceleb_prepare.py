"""Data preparation for VoxCeleb1/2 (or the mini corpus): SpeechBrain CSVs.

    prepare_voxceleb(data_folder, save_folder, verification_pairs_file)

Reads folders of wav files in VoxCeleb's layout (``wav/idXXXXX/<session>/<utt>.wav``),
leaves out the speakers of the verification lists, checks every file's header
(readable, not empty, expected sample rate), splits utterances into train and
dev, and writes ``train.csv`` and ``dev.csv`` with columns
``ID, duration, wav, start, stop, spk_id`` (start/stop in samples).

Also a script: ``python voxceleb_prepare.py DATA_FOLDER SAVE_FOLDER --verification-pairs LIST``.
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

from speechbrain_tdy.dataio.trials import read_trials, speaker_of

logger = logging.getLogger(__name__)
OPTIONS_FILE = "prepare_options.json"
BAD_AUDIO_REPORT = "bad_audio.txt"


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
    on_bad_audio="error",
    skip_prep=False,
    seed=1986,
):
    """Write ``train.csv`` / ``dev.csv`` into ``save_folder``.

    Arguments
    ---------
    data_folder : str or list of str
        VoxCeleb1 and/or VoxCeleb2 folders holding ``wav/`` (or being it).
    save_folder : str
        Where the CSVs go.
    verification_pairs_file : str, list of str or None
        Local trial lists (VoxCeleb1-O/E/H, cleaned or not); their speakers are
        excluded from training. ``None`` entries are ignored.
    splits, split_ratio : sequences
        Output splits and their share of each speaker's utterances (percent).
    seg_dur : float
        Segment length in seconds when ``random_segment`` is False.
    random_segment : bool
        One row per whole utterance (the dataloader takes random crops), or
        fixed ``seg_dur`` segments.
    split_speaker : bool
        Split by speaker instead of by utterance.
    on_bad_audio : str
        "error": raise, listing every unreadable, empty or wrong-rate file;
        "skip": leave them out and list them in ``bad_audio.txt``.
    skip_prep : bool
        Do nothing.
    """
    if skip_prep:
        return
    if on_bad_audio not in ("error", "skip"):
        raise ValueError(f"on_bad_audio must be 'error' or 'skip', got {on_bad_audio!r}")
    data_folders = [data_folder] if isinstance(data_folder, (str, os.PathLike)) else list(data_folder)
    trial_files = verification_pairs_file
    if trial_files is None or isinstance(trial_files, (str, os.PathLike)):
        trial_files = [trial_files]
    trial_files = [str(f) for f in trial_files if f]
    save_folder = Path(save_folder)
    save_folder.mkdir(parents=True, exist_ok=True)

    excluded = excluded_speakers(trial_files)
    wav_files = list_wavs(data_folders)
    options = dict(
        data_folder=[str(f) for f in data_folders], verification_pairs_file=trial_files, splits=list(splits),
        split_ratio=list(split_ratio), seg_dur=seg_dur, sample_rate=sample_rate, random_segment=random_segment,
        split_speaker=split_speaker, on_bad_audio=on_bad_audio, seed=seed, inputs=fingerprint(wav_files, trial_files),
    )
    outputs = [save_folder / f"{split}.csv" for split in splits]
    if is_prepared(save_folder, options, outputs):
        logger.info("Preparation already done for these inputs: skipping (%s)", save_folder)
        return

    utterances, bad = read_headers([w for w in wav_files if w[1] not in excluded], sample_rate)
    report_bad_audio(bad, save_folder, on_bad_audio)
    if not utterances:
        raise ValueError(f"No usable training audio found in {', '.join(map(str, data_folders))}")
    assignment = split_utterances(utterances, splits, split_ratio, split_speaker, seed)
    for split, output in zip(splits, outputs):
        if not assignment[split]:
            raise ValueError(f"Split {split!r} would be empty: raise its share in split_ratio {list(split_ratio)}")
        rows = [row for utt in assignment[split] for row in csv_rows(utt, seg_dur, sample_rate, random_segment)]
        write_csv(output, rows)
    write_json(save_folder / OPTIONS_FILE, options)
    logger.info("Prepared %s in %s (%d speakers excluded by the trial lists)", ", ".join(splits), save_folder, len(excluded))


def excluded_speakers(trial_files):
    """Speakers appearing in any of the trial lists (all lists must exist and parse)."""
    missing = [f for f in trial_files if not os.path.isfile(f)]
    if missing:
        raise FileNotFoundError(f"Verification list(s) not found: {', '.join(missing)}")
    return {speaker_of(path) for f in trial_files for trial in read_trials(f) for path in (trial.enrol, trial.test)}


def list_wavs(data_folders):
    """Sorted (path, speaker, session) of every wav; m4a files are an error."""
    found, m4a = [], []
    for folder in data_folders:
        root = Path(folder) / "wav" if (Path(folder) / "wav").is_dir() else Path(folder)
        if not root.is_dir():
            raise FileNotFoundError(f"Data folder not found: {folder}")
        for path in root.rglob("*"):
            if path.suffix == ".wav":
                relative = path.relative_to(root).parts
                if len(relative) != 3:
                    raise ValueError(f"{path}: expected <wav root>/idXXXXX/<session>/<utterance>.wav")
                found.append((str(path), relative[0], relative[1]))
            elif path.suffix == ".m4a":
                m4a.append(str(path))
    if m4a:
        raise ValueError(
            f"{len(m4a)} m4a file(s), e.g. {m4a[0]}: convert VoxCeleb2's m4a to 16 kHz wav first, e.g.\n"
            "  find DIR -name '*.m4a' | while read f; do ffmpeg -loglevel error -y -i \"$f\" "
            "-ac 1 -ar 16000 \"${f%.m4a}.wav\" && rm \"$f\"; done"
        )
    return sorted(found)


def fingerprint(wav_files, trial_files):
    """Digest of the input listing (paths, sizes, modification times)."""
    digest = hashlib.sha1()
    for path in [w[0] for w in wav_files] + list(trial_files):
        stat = os.stat(path)
        digest.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def is_prepared(save_folder, options, outputs):
    options_file = save_folder / OPTIONS_FILE
    if not options_file.is_file() or not all(o.is_file() for o in outputs):
        return False
    with open(options_file, encoding="utf-8") as stream:
        return json.load(stream) == options


def read_headers(wav_files, sample_rate):
    """Usable utterances [(path, speaker, session, frames)] and bad ones [(path, reason)]."""
    usable, bad = [], []
    for path, speaker, session in wav_files:
        try:
            info = sf.info(path)
        except Exception as error:  # soundfile raises several types for undecodable files
            bad.append((path, f"unreadable ({error})"))
            continue
        if info.frames == 0:
            bad.append((path, "empty (no samples)"))
        elif info.samplerate != sample_rate:
            bad.append((path, f"sample rate {info.samplerate} Hz, expected {sample_rate} Hz"))
        else:
            usable.append((path, speaker, session, info.frames))
    return usable, bad


def report_bad_audio(bad, save_folder, on_bad_audio):
    if not bad:
        return
    lines = [f"{path}\t{reason}" for path, reason in bad]
    if on_bad_audio == "error":
        shown = "\n  ".join(lines[:20]) + (f"\n  ... ({len(lines)} in all)" if len(lines) > 20 else "")
        raise ValueError(f"{len(bad)} bad audio file(s) (set on_bad_audio: skip to leave them out):\n  {shown}")
    write_text(save_folder / BAD_AUDIO_REPORT, "\n".join(lines) + "\n")
    logger.warning("Skipped %d bad audio file(s); see %s", len(bad), save_folder / BAD_AUDIO_REPORT)


def split_utterances(utterances, splits, split_ratio, split_speaker, seed):
    """Assign utterances to splits: each speaker's utterances by ratio, or whole
    speakers by ratio with ``split_speaker``."""
    if len(splits) != len(split_ratio):
        raise ValueError(f"splits {list(splits)} and split_ratio {list(split_ratio)} differ in length")
    rng = random.Random(seed)
    by_speaker = {}
    for utt in utterances:
        by_speaker.setdefault(utt[1], []).append([utt])
    # A unit goes to one split: single utterances, or all utterances of a speaker.
    unit_groups = [[sum(units, []) for units in by_speaker.values()]] if split_speaker else list(by_speaker.values())
    assignment = {split: [] for split in splits}
    for units in unit_groups:
        rng.shuffle(units)
        start, cumulative = 0, 0
        for split, ratio in zip(splits, split_ratio):
            cumulative += ratio
            end = round(len(units) * cumulative / sum(split_ratio))
            assignment[split].extend(utt for unit in units[start:end] for utt in unit)
            start = end
    return assignment


def csv_rows(utterance, seg_dur, sample_rate, random_segment):
    """CSV rows of one utterance: whole, or cut into ``seg_dur`` segments."""
    path, speaker, session, frames = utterance
    name = f"{speaker}--{session}--{Path(path).stem}"
    if random_segment:
        return [[name, f"{frames / sample_rate:.3f}", path, 0, frames, speaker]]
    segment = int(seg_dur * sample_rate)
    rows = []
    for start in range(0, max(frames - segment, 0) + 1, segment):
        stop = min(start + segment, frames)
        rows.append([f"{name}_{start}_{stop}", f"{(stop - start) / sample_rate:.3f}", path, start, stop, speaker])
    return rows


def write_csv(path, rows):
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["ID", "duration", "wav", "start", "stop", "spk_id"])
        writer.writerows(rows)
    os.replace(partial, path)


def write_text(path, text):
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def write_json(path, data):
    write_text(path, json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_folder", nargs="+")
    parser.add_argument("save_folder")
    parser.add_argument("--verification-pairs", nargs="*", default=[])
    parser.add_argument("--on-bad-audio", choices=("error", "skip"), default="error")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    try:
        prepare_voxceleb(args.data_folder, args.save_folder, args.verification_pairs, on_bad_audio=args.on_bad_audio)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
