"""Reading the recipe's CSV manifests with errors that name the file and line."""
import csv
from pathlib import Path

REQUIRED_COLUMNS = ("ID", "duration", "wav", "start", "stop", "spk_id")


def load_manifest(path, required=REQUIRED_COLUMNS):
    """A SpeechBrain data dict {ID: {column: value}} from a CSV manifest.

    ``duration`` is read as a float, ``start``/``stop`` as ints. Raises
    FileNotFoundError for a missing file and ValueError naming ``path:line``
    for a missing column, a row with the wrong number of fields, a bad number,
    ``stop <= start``, or a duplicate ID.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CSV manifest not found: {path}")
    data = {}
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.reader(stream)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file (expected a header with {', '.join(required)})")
        missing = [c for c in required if c not in header]
        if missing:
            raise ValueError(f"{path}:1: missing column(s) {', '.join(missing)}; header is {','.join(header)}")
        for fields in reader:
            line = reader.line_num
            if not fields:
                continue
            if len(fields) != len(header):
                raise ValueError(f"{path}:{line}: expected {len(header)} fields, got {len(fields)}")
            row = dict(zip(header, fields))
            try:
                row["duration"] = float(row["duration"])
                row["start"], row["stop"] = int(row["start"]), int(row["stop"])
            except ValueError as error:
                raise ValueError(f"{path}:{line}: bad number ({error})") from None
            if row["stop"] <= row["start"]:
                raise ValueError(f"{path}:{line}: stop ({row['stop']}) must be greater than start ({row['start']})")
            utterance = row.pop("ID")
            if utterance in data:
                raise ValueError(f"{path}:{line}: duplicate ID {utterance!r}")
            data[utterance] = row
    return data
