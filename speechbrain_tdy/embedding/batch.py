"""Embedding many files in batches of similar durations, with audio decoded in DataLoader workers."""
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from speechbrain_tdy.dataio.audio import AudioError, audio_header, load_utterance
from speechbrain_tdy.dataio.batching import length_batches
from speechbrain_tdy.embedding.files import embed_waveforms
from speechbrain_tdy.storage.atomic import (
    Replaceable,
    check_destination,
    exclusive_lock,
    starts_with,
    write_text_atomically,
)
from speechbrain_tdy.storage.embeddings_file import NpyFolderOutput, NpzOutput, lock_path

#: First line of the bad-files report; a report is replaced only if it begins with it.
REPORT_HEADER = "# speechbrain-tdy embed: files that could not be used (source<TAB>reason)\n"
REPORT = Replaceable("a bad-files report of speechbrain-tdy embed (first line: " + REPORT_HEADER.strip() + ")",
                     starts_with(REPORT_HEADER))


class AudioFiles(Dataset):
    """Decodes utterances in DataLoader workers: item i -> (i, waveform or
    None, reason or None); a file that cannot be used does not stop the loader."""

    def __init__(self, utterances, load):
        self.utterances, self.load = utterances, load

    def __len__(self):
        return len(self.utterances)

    def __getitem__(self, index):
        path = self.utterances[index].path
        try:
            return index, self.load(path), None
        except (ValueError, OSError, RuntimeError) as error:  # AudioError is a ValueError
            return index, None, str(error) if path in str(error) else f"{path}: {error}"


def collate(items):
    """(indices, waveforms [(samples,)], failures [(index, reason)]) of a list of AudioFiles items."""
    good = [(index, wav) for index, wav, _ in items if wav is not None]
    failures = [(index, reason) for index, wav, reason in items if wav is None]
    return [index for index, _ in good], [wav for _, wav in good], failures


@dataclass
class Summary:
    """What :func:`embed_utterances` did: counts, the bad files [(Utterance,
    reason)], the report file written (None if none was), and where the time went."""

    report: Path = None
    embedded: int = 0
    already_done: int = 0
    bad: list = field(default_factory=list)
    model_seconds: float = 0.0
    loader_wait_seconds: float = 0.0


def embed_utterances(model, utterances, out, batch_size=1, num_workers=2, strict=False, progress=True):
    """Embed ``utterances`` (from :func:`read_inputs`) with ``model`` (a
    TDYSpeakerRecognition) into ``out`` (``*.npz`` or a folder), skipping
    those already there. Returns a :class:`Summary`.

    Files are read as :func:`~speechbrain_tdy.embedding.files.embed_files`
    reads them; with ``batch_size`` 1 (the default) each is embedded alone,
    so its embedding is exactly ``embed_file``'s. Larger batches of similar
    durations are faster and equal up to float rounding, which a TDY
    model's attention can amplify.


    One run at a time writes to ``out``: a second one stops at once with
    LockedError naming the lock file ``OUT.lock``. An existing ``out`` that is
    not an output of this command for the same model, or an existing report
    that it did not write, is refused before any work. Files that cannot be
    used are listed in the output's ``bad_files.txt`` with the reason (an
    earlier run's report is replaced by this run's, never deleted); with
    ``strict`` the first one raises AudioError instead.
    """
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(lock_path(out), "speechbrain-tdy embed"):
        return _embed_utterances(model, utterances, out, batch_size, num_workers, strict, progress)


def _embed_utterances(model, utterances, out, batch_size, num_workers, strict, progress):
    fingerprint = model.fingerprint().numpy()
    output = NpzOutput(out, fingerprint) if str(out).endswith(".npz") else NpyFolderOutput(out, fingerprint, utterances)
    check_destination(output.report, REPORT)
    done = output.finished()
    todo = [u for u in utterances if u.id not in done]
    summary = Summary(already_done=len(utterances) - len(todo))
    durations, readable = [], []
    for utterance in todo:
        try:
            durations.append(audio_header(utterance.path).duration)  # refuses a FIFO before opening it
            readable.append(utterance)
        except (ValueError, OSError) as error:  # AudioError is a ValueError
            summary.bad.append((utterance, str(error)))  # names the file and the problem
    _stop_if_strict(strict, summary)
    read = partial(load_utterance, sample_rate=model.sample_rate, min_samples=model.min_samples,
                   max_duration=model.max_duration)
    loader = DataLoader(AudioFiles(readable, read), batch_sampler=length_batches(durations, max_items=batch_size),
                        num_workers=num_workers, collate_fn=collate)
    bar = tqdm(total=len(readable), unit="file", disable=not progress)
    batches = iter(loader)
    while True:
        start = time.perf_counter()
        batch = next(batches, None)
        summary.loader_wait_seconds += time.perf_counter() - start
        if batch is None:
            break
        indices, wavs, failures = batch
        summary.bad.extend((readable[i], reason) for i, reason in failures)
        _stop_if_strict(strict, summary)
        start = time.perf_counter()
        if indices:
            embeddings = embed_waveforms(lambda padded, lens: model.encode_batch(padded, lens)[:, 0], wavs).numpy()
            output.write([readable[i].id for i in indices], embeddings)
        summary.model_seconds += time.perf_counter() - start
        summary.embedded += len(indices)
        bar.update(len(indices) + len(failures))
    bar.close()
    output.close([u.id for u in utterances])
    if summary.bad or output.report.is_file():  # an earlier run's report is replaced by this run's
        summary.report = write_report(output.report, summary.bad)
    return summary


def _stop_if_strict(strict, summary):
    if strict and summary.bad:
        raise AudioError(summary.bad[0][1])


def write_report(path, bad):
    """Write the report of one run to ``path``: :data:`REPORT_HEADER`, then
    ``source<TAB>reason`` per bad file (none: a clean run). Replaces only a
    report of this command; returns ``path``."""
    lines = "".join(f"{utterance.source}\t{reason}\n" for utterance, reason in bad)
    path.parent.mkdir(parents=True, exist_ok=True)  # a folder OUT that no embedding was written to
    write_text_atomically(path, REPORT_HEADER + lines, REPORT)
    return path
