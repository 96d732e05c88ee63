"""Per-frame phone labels (``.phn`` files), as the mini corpus writes them
beside each wav (``tools/mini_corpus.py``): one line "phone phone_class" per
10 ms frame."""

#: The phone classes of a label file, in a fixed order (e.g. for class indices).
PHONE_CLASSES = ("vowel", "nasal", "fricative", "stop", "pause")


def read_phone_labels(path):
    """Per-frame labels of a ``.phn`` file.

    Returns a list of (phone, phone_class) tuples, one per 10 ms frame: frame i
    covers samples [160 i, 160 (i + 1)) of the wav beside it, so there are
    ``num_samples // 160`` frames. Raises ValueError naming the file and line of
    a malformed line or an unknown phone class.
    """
    labels = []
    with open(path, encoding="utf-8") as stream:
        for number, line in enumerate(stream, start=1):
            fields = line.split()
            if len(fields) != 2 or fields[1] not in PHONE_CLASSES:
                raise ValueError(f"{path}:{number}: expected 'phone phone_class' with a class among "
                                 f"{', '.join(PHONE_CLASSES)}, got {line.strip()!r}")
            labels.append((fields[0], fields[1]))
    return labels
