"""Verification trial lists in VoxCeleb's format: ``label enrol test`` per line."""
from dataclasses import dataclass
from pathlib import Path


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
    """All trials of a list file; blank lines are skipped.

    Raises FileNotFoundError if ``path`` does not exist and ValueError naming the
    file and line of the first malformed line, or if the list has no trial.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Trial list not found: {path}")
    trials = []
    with open(path, encoding="utf-8") as stream:
        for number, line in enumerate(stream, start=1):
            if line.strip():
                trials.append(parse_trial_line(line, path, number))
    if not trials:
        raise ValueError(f"{path}: the trial list is empty")
    return trials


def speaker_of(path):
    """VoxCeleb speaker id of a trial path ``idXXXXX/<session>/<utt>.wav``.

    >>> speaker_of("id10270/x6uYqmx31kE/00001.wav")
    'id10270'
    """
    return Path(path).parts[0]
