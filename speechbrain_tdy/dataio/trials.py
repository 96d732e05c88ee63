"""Verification trial lists in VoxCeleb's format: ``label enrol test`` per line."""
import logging
from dataclasses import dataclass
from pathlib import Path

from speechbrain_tdy.storage.reading import check_regular_file

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trial:
    """One trial: ``label`` is 1 (same speaker) or 0; paths as written in the list."""

    label: int
    enrol: str
    test: str


def parse_trial_line(line, source="<string>", line_number=1):
    """Parse ``label enrol test``; raise ValueError naming ``source:line_number``.

    >>> parse_trial_line("1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav")
    Trial(label=1, enrol='id10270/x6uYqmx31kE/00001.wav', test='id10270/8jEAjG6SegY/00008.wav')
    """
    fields = line.split()
    if len(fields) != 3:
        raise ValueError(
            f"{source}:{line_number}: expected 'label enrol test' (3 fields), got {len(fields)}: {line.strip()!r}"
        )
    if fields[0] not in ("0", "1"):
        raise ValueError(f"{source}:{line_number}: label must be 0 or 1, got {fields[0]!r}")
    return Trial(int(fields[0]), fields[1], fields[2])


def read_trials(path):
    """All trials of a list file (UTF-8, with or without a byte-order mark);
    blank lines are skipped, a repeated line is counted once (with a warning).

    Raises FileNotFoundError if ``path`` does not exist, ValueError unread if
    it is not a regular file, and ValueError naming the file and line of the
    first malformed or undecodable line, of a pair listed twice with
    different labels, or if the list has no trial.
    """
    path = Path(path)
    check_regular_file(path, "a trial list")
    trials, first_line = {}, {}
    with open(path, "rb") as stream:
        for number, raw in enumerate(stream, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(f"{path}:{number}: not UTF-8 text ({error.reason} at byte {error.start}); "
                                 "save the list as UTF-8") from error
            if not line.strip():
                continue
            trial = parse_trial_line(line, path, number)
            pair = (trial.enrol, trial.test)
            if pair in trials:
                if trials[pair].label != trial.label:
                    raise ValueError(f"{path}:{number}: the pair of line {first_line[pair]} again, with label "
                                     f"{trial.label} instead of {trials[pair].label}")
                logger.warning("%s:%d repeats line %d; the trial is counted once", path, number, first_line[pair])
                continue
            trials[pair], first_line[pair] = trial, number
    if not trials:
        raise ValueError(f"{path}: the trial list is empty")
    return list(trials.values())


def speaker_of(path):
    """VoxCeleb speaker id of a trial path ``idXXXXX/<session>/<utt>.wav``.

    >>> speaker_of("id10270/x6uYqmx31kE/00001.wav")
    'id10270'
    """
    return Path(path).parts[0]
