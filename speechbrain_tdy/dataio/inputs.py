"""Input lists of audio files: a folder, a text list of paths, or a Kaldi wav.scp."""
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from speechbrain_tdy.storage.reading import read_text

#: File extensions searched for in a folder: soundfile's formats and common aliases.
AUDIO_EXTENSIONS = {f".{name.lower()}" for name in sf.available_formats()} - {".raw", ".wavex"} | {
    ".aif", ".oga", ".opus"}
#: Largest list or wav.scp read (VoxCeleb2's 1.1 million paths take about 70 MB).
MAX_LIST_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True)
class Utterance:
    """One input: its id, its audio file, and where it was listed (for errors)."""

    id: str
    path: str
    source: str


def read_inputs(source):
    """Utterances of INPUT (a folder, a ``wav.scp`` or a list of paths), in order.
    In a folder, every entry named like an audio file is an utterance, so
    that one the reader cannot use (a broken link, a FIFO, a folder) is
    reported with the reason instead of silently left out.

    Raises FileNotFoundError for a missing INPUT and ValueError naming the
    file and line of a malformed line, a duplicated id, or an INPUT without
    audio files; a list that is not a regular file is refused unread.
    """
    source = Path(source)
    if source.is_dir():
        utterances = [
            Utterance(path.relative_to(source).with_suffix("").as_posix(), str(path), str(path))
            for path in sorted(source.rglob("*"))
            if path.suffix.lower() in AUDIO_EXTENSIONS  # broken links, FIFOs, folders too: reported, not skipped
        ]
    elif source.exists() or source.is_symlink():  # a list; one that is not a regular file is refused unread
        if source.suffix.lower() in AUDIO_EXTENSIONS:
            raise ValueError(f"{source} is an audio file; INPUT is a folder, a wav.scp or a text list of paths")
        utterances = _read_list(source, scp=source.suffix.lower() == ".scp")
    else:
        raise FileNotFoundError(f"{source}: no such folder or list file")
    if not utterances:
        raise ValueError(f"{source}: no audio files found")
    first = {}
    for utterance in utterances:
        if utterance.id in first:
            raise ValueError(f"{utterance.source}: id {utterance.id!r} is also the id of {first[utterance.id]}")
        first[utterance.id] = utterance.source
    return utterances


def _read_list(path, scp):
    lines = read_text(path, "a text list of audio files", MAX_LIST_BYTES).splitlines()
    utterances = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{number}"
        if scp:
            fields = line.split(maxsplit=1)
            if len(fields) != 2:
                raise ValueError(f"{where}: expected 'id path', got {line!r}")
            if fields[1].endswith("|"):
                raise ValueError(f"{where}: piped commands are not supported, give the audio file's path")
            utt_id, audio = fields
        else:
            utt_id, audio = str(Path(line).with_suffix("")), line
        utterances.append(Utterance(utt_id, str(path.parent / audio), where))
    return utterances
