"""Speaker-balanced batches for the prototypical loss."""
import random
from collections import defaultdict

from torch.utils.data import Sampler


class SpeakerBalancedBatchSampler(Sampler):
    """Batches of ``n_speakers`` distinct speakers x ``n_per_speaker`` utterances.

    Every epoch the utterances of each speaker are shuffled and cut into groups
    of ``n_per_speaker`` (leftovers dropped); groups are shuffled and packed into
    batches in which no speaker appears twice. Each batch lists a speaker's
    utterances consecutively. The order depends only on ``seed`` and the epoch
    (``set_epoch``), so a resumed run sees the same batches. Under DDP,
    SpeechBrain's ``Brain`` wraps this sampler and deals whole batches to the
    processes, so batches stay speaker-balanced.

    Arguments
    ---------
    speaker_ids : sequence
        Speaker label of every item of the dataset.
    n_speakers : int
        Speakers per batch.
    n_per_speaker : int
        Utterances per speaker in a batch.
    seed : int
        Base seed of the shuffles.

    Example
    -------
    >>> sampler = SpeakerBalancedBatchSampler(["a", "a", "b", "b", "c", "c", "c"], n_speakers=2)
    >>> batches = list(sampler)
    >>> len(batches), sorted(len(b) for b in batches)
    (1, [4])
    """

    def __init__(self, speaker_ids, n_speakers, n_per_speaker=2, seed=1986):
        self.n_speakers, self.n_per_speaker, self.seed = n_speakers, n_per_speaker, seed
        self.epoch = 0
        self.by_speaker = defaultdict(list)
        for index, speaker in enumerate(speaker_ids):
            self.by_speaker[speaker].append(index)
        eligible = [s for s, items in self.by_speaker.items() if len(items) >= n_per_speaker]
        if len(eligible) < n_speakers:
            raise ValueError(
                f"A batch needs {n_speakers} speakers with at least {n_per_speaker} utterances each; "
                f"the data has {len(eligible)}"
            )
        n_groups = sum(len(items) // n_per_speaker for items in self.by_speaker.values())
        self.num_batches = n_groups // n_speakers

    def set_epoch(self, epoch):
        """Reshuffle for ``epoch``."""
        self.epoch = epoch

    def _groups(self, rng, speaker):
        """The utterances of ``speaker`` shuffled and cut into groups of n_per_speaker."""
        items = list(self.by_speaker[speaker])
        rng.shuffle(items)
        return [items[i : i + self.n_per_speaker] for i in range(0, len(items) - self.n_per_speaker + 1, self.n_per_speaker)]

    def _batches(self):
        rng = random.Random(self.seed * 100003 + self.epoch)
        groups = [(s, g) for s in sorted(self.by_speaker) for g in self._groups(rng, s)]
        rng.shuffle(groups)
        batches, open_batches = [], []
        for speaker, items in groups:
            batch = next((b for b in open_batches if speaker not in b[0]), None)
            if batch is None:
                batch = (set(), [])
                open_batches.append(batch)
            batch[0].add(speaker)
            batch[1].extend(items)
            if len(batch[0]) == self.n_speakers:
                open_batches.remove(batch)
                batches.append(batch[1])
        # Complete unfinished batches with extra groups so every epoch has len(self) batches.
        eligible = sorted(s for s, items in self.by_speaker.items() if len(items) >= self.n_per_speaker)
        while len(batches) < self.num_batches:
            speakers, items = open_batches.pop(0) if open_batches else (set(), [])
            while len(speakers) < self.n_speakers:
                speaker = rng.choice([s for s in eligible if s not in speakers])
                speakers.add(speaker)
                items.extend(rng.choice(self._groups(rng, speaker)))
            batches.append(items)
        return batches[: self.num_batches]

    def __iter__(self):
        return iter(self._batches())

    def __len__(self):
        return self.num_batches
