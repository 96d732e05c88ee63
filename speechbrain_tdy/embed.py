"""Embed many audio files in batches.

    python -m speechbrain_tdy.embed MODEL INPUT OUT [--batch-size 16] [--num-workers 2]
                                    [--device cpu] [--strict]

MODEL is a model folder or hub id. INPUT is

* a folder, searched recursively for audio files soundfile reads (wav, flac,
  ogg, ...); an utterance's id is its path below the folder without the extension;
* a Kaldi-style ``wav.scp`` (any ``*.scp``): ``id path`` per line;
* any other text file: one path per line, which is also the id (without the
  extension).

Relative paths in lists are relative to the list's folder; blank lines and
lines starting with ``#`` are skipped. OUT ending in ``.npz`` gets one file
with ``ids`` (n,) and ``embeddings`` (n, dim) float32; any other OUT is a
folder with one ``<id>.npy`` (dim,) per utterance. Embeddings are
L2-normalised; files are read as ``TDYSpeakerRecognition.embed_file`` reads
them (``load_utterance``: files shorter than ``min_duration`` are wrap-padded).

Files are decoded in DataLoader workers and embedded in batches of similar
durations. Padding does not change an embedding (``encode_batch`` is exact
under padding) but a batch rounds differently from one file alone, and a TDY
model's attention can amplify that: ``--batch-size 1`` gives exactly
``embed_file``'s embeddings. Finished batches are written at once under
temporary names then renamed (``OUT.parts/`` for ``.npz``, merged at the
end), so a killed run loses at most the batch in flight and a rerun skips
what is done. Files that cannot be used are skipped and listed with the
reason in ``OUT.bad_files.txt`` (``OUT/bad_files.txt`` for a folder);
``--strict`` stops at the first one instead.
"""
import argparse
import io
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from speechbrain_tdy.atomic import atomic_path, write_text_atomically
from speechbrain_tdy.dataio.audio import AudioError, load_utterance
from speechbrain_tdy.inference.interface import TDYSpeakerRecognition, same_fingerprint

#: File extensions searched for in a folder: soundfile's formats and common aliases.
AUDIO_EXTENSIONS = {f".{name.lower()}" for name in sf.available_formats()} - {".raw", ".wavex"} | {
    ".aif", ".oga", ".opus"}


@dataclass(frozen=True)
class Utterance:
    """One input: its id, its audio file, and where it was listed (for errors)."""

    id: str
    path: str
    source: str


def read_inputs(source):
    """Utterances of INPUT (a folder, a ``wav.scp`` or a list of paths), in order.

    Raises FileNotFoundError for a missing INPUT and ValueError naming the
    file and line of a malformed line, a duplicated id, or an empty INPUT.
    """
    source = Path(source)
    if source.is_dir():
        utterances = [
            Utterance(path.relative_to(source).with_suffix("").as_posix(), str(path), str(path))
            for path in sorted(source.rglob("*"))
            if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file()
        ]
    elif source.is_file():
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
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a UTF-8 text list of audio files ({error})") from error
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
    """(indices, wavs (batch, samples) zero-padded, relative lengths (batch,),
    failures [(index, reason)]) of a list of AudioFiles items."""
    good = [(index, wav) for index, wav, _ in items if wav is not None]
    failures = [(index, reason) for index, wav, reason in items if wav is None]
    if not good:
        return [], None, None, failures
    longest = max(wav.shape[0] for _, wav in good)
    wavs = torch.zeros(len(good), longest)
    for row, (_, wav) in enumerate(good):
        wavs[row, : wav.shape[0]] = wav
    lens = torch.tensor([wav.shape[0] / longest for _, wav in good])
    return [index for index, _ in good], wavs, lens, failures


def length_batches(durations, batch_size):
    """Batches of indices into ``durations``, longest first, each of similar durations.

    >>> length_batches([1.0, 5.0, 2.0, 4.0, 3.0], 2)
    [[1, 3], [4, 2], [0]]
    """
    order = sorted(range(len(durations)), key=lambda i: -durations[i])
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


class NpzOutput:
    """OUT.npz: ``ids`` (n,), ``embeddings`` (n, dim) float32 and the model's
    ``fingerprint`` (dim,). Finished batches go to OUT.parts/ and are merged
    into OUT (with what OUT held before) by :meth:`close`."""

    def __init__(self, path, fingerprint):
        self.path, self.fingerprint = Path(path), fingerprint
        stem = self.path.name[: -len(".npz")]
        self.parts = self.path.with_name(stem + ".parts")
        self.report = self.path.with_name(stem + ".bad_files.txt")

    def finished(self):
        """id -> embedding of everything OUT and OUT.parts/ hold."""
        done = {}
        for file in ([self.path] if self.path.is_file() else []) + self._parts():
            done.update(read_embeddings(file, self.fingerprint))
        return done

    def write(self, ids, embeddings):
        """Save one finished batch: ids (n,), embeddings (n, dim)."""
        self.parts.mkdir(parents=True, exist_ok=True)
        parts = self._parts()
        number = int(parts[-1].stem.split("-")[1]) + 1 if parts else 0
        save_embeddings(self.parts / f"batch-{number:07d}.npz", ids, embeddings, self.fingerprint)

    def close(self, order):
        """Merge OUT and the finished batches into OUT, the ids of ``order`` first."""
        done = self.finished()
        ids = [i for i in order if i in done] + sorted(set(done) - set(order))
        if ids:
            save_embeddings(self.path, ids, np.stack([done[i] for i in ids]), self.fingerprint)
        for part in self._parts():
            part.unlink()
        if self.parts.is_dir():
            self.parts.rmdir()

    def _parts(self):
        return sorted(self.parts.glob("batch-*.npz"))


class NpyFolderOutput:
    """OUT/<id>.npy (dim,) float32 per utterance (ids with ``/`` in subfolders)
    and the model's fingerprint in OUT/.fingerprint.npy."""

    def __init__(self, path, fingerprint, utterances):
        self.path, self.fingerprint = Path(path), fingerprint
        self.report = self.path / "bad_files.txt"
        for utterance in utterances:
            parts = Path(utterance.id).parts
            if Path(utterance.id).is_absolute() or ".." in parts or not parts:
                raise ValueError(f"{utterance.source}: id {utterance.id!r} cannot be a file name below {self.path}; "
                                 "write to a .npz file instead")
        stored = self.path / ".fingerprint.npy"
        if stored.is_file() and not same_fingerprint(np.load(stored, allow_pickle=False), fingerprint):
            raise ValueError(f"{self.path} holds embeddings of another model; give another OUT")
        self.utterances = utterances

    def finished(self):
        """id -> None for every utterance whose file exists."""
        return {u.id: None for u in self.utterances if (self.path / f"{u.id}.npy").is_file()}

    def write(self, ids, embeddings):
        """Save one finished batch, one file per utterance."""
        self.path.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path / ".fingerprint.npy") as partial:
            partial.write_bytes(npy_bytes(self.fingerprint))
        for utt_id, embedding in zip(ids, embeddings):
            target = self.path / f"{utt_id}.npy"
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as partial:
                partial.write_bytes(npy_bytes(embedding))

    def close(self, order):
        """Nothing to merge: every file is in place once written."""


def npy_bytes(array):
    """``array`` as the bytes of a float32 .npy file."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32))
    return buffer.getvalue()


def save_embeddings(path, ids, embeddings, fingerprint):
    """Write an embeddings .npz atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, ids=np.array(ids, dtype=str), embeddings=np.asarray(embeddings, dtype=np.float32),
             fingerprint=np.asarray(fingerprint, dtype=np.float32))
    with atomic_path(path) as partial:
        partial.write_bytes(buffer.getvalue())


def read_embeddings(path, fingerprint=None):
    """id -> embedding (dim,) of an embeddings .npz (no pickle). ValueError
    naming the file if it is not one, or if ``fingerprint`` is given and the
    file was written by another model."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            ids, embeddings, stored = arrays["ids"], arrays["embeddings"], arrays["fingerprint"]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: not an embeddings file of speechbrain_tdy.embed ({error})") from error
    if ids.ndim != 1 or embeddings.ndim != 2 or len(ids) != len(embeddings):
        raise ValueError(f"{path}: ids {ids.shape} and embeddings {embeddings.shape} do not match")
    if fingerprint is not None and not same_fingerprint(stored, fingerprint):
        raise ValueError(f"{path} holds embeddings of another model; give another OUT")
    return dict(zip(ids.tolist(), embeddings))


@dataclass
class Summary:
    """What :func:`embed_utterances` did: counts, the bad files [(Utterance,
    reason)] and their report file, and where the time went."""

    report: Path
    embedded: int = 0
    already_done: int = 0
    bad: list = field(default_factory=list)
    model_seconds: float = 0.0
    loader_wait_seconds: float = 0.0


def embed_utterances(model, utterances, out, batch_size=16, num_workers=2, strict=False, progress=True):
    """Embed ``utterances`` (from :func:`read_inputs`) with ``model`` (a
    TDYSpeakerRecognition) into ``out`` (``*.npz`` or a folder), skipping
    those already there. Returns a :class:`Summary`.

    Files that cannot be used are listed in the output's ``bad_files.txt``
    with the reason; with ``strict`` the first one raises AudioError instead.
    """
    fingerprint = model.fingerprint().numpy()
    output = NpzOutput(out, fingerprint) if str(out).endswith(".npz") else NpyFolderOutput(out, fingerprint, utterances)
    done = output.finished()
    todo = [u for u in utterances if u.id not in done]
    summary = Summary(output.report, already_done=len(utterances) - len(todo))
    durations, readable = [], []
    for utterance in todo:
        try:
            durations.append(sf.info(utterance.path).duration)
            readable.append(utterance)
        except (RuntimeError, OSError) as error:  # soundfile's LibsndfileError is a RuntimeError
            summary.bad.append((utterance, f"{utterance.path}: cannot read the audio header ({error})"))
    _stop_if_strict(strict, summary)
    read = partial(load_utterance, sample_rate=model.sample_rate, min_samples=model.min_samples)
    loader = DataLoader(AudioFiles(readable, read), batch_sampler=length_batches(durations, batch_size),
                        num_workers=num_workers, collate_fn=collate)
    bar = tqdm(total=len(readable), unit="file", disable=not progress)
    batches = iter(loader)
    while True:
        start = time.perf_counter()
        batch = next(batches, None)
        summary.loader_wait_seconds += time.perf_counter() - start
        if batch is None:
            break
        indices, wavs, lens, failures = batch
        summary.bad.extend((readable[i], reason) for i, reason in failures)
        _stop_if_strict(strict, summary)
        start = time.perf_counter()
        if indices:
            embeddings = model.encode_batch(wavs, lens, normalize=True)[:, 0].cpu().numpy()
            output.write([readable[i].id for i in indices], embeddings)
        summary.model_seconds += time.perf_counter() - start
        summary.embedded += len(indices)
        bar.update(len(indices) + len(failures))
    bar.close()
    output.close([u.id for u in utterances])
    write_report(output.report, summary.bad)
    return summary


def _stop_if_strict(strict, summary):
    if strict and summary.bad:
        raise AudioError(summary.bad[0][1])


def write_report(path, bad):
    """``source<TAB>reason`` per bad file; an empty run removes the previous report."""
    if bad:
        write_text_atomically(path, "".join(f"{utterance.source}\t{reason}\n" for utterance, reason in bad))
    elif path.is_file():
        path.unlink()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model folder or hub id")
    parser.add_argument("input", help="folder of audio files, wav.scp, or text list of paths")
    parser.add_argument("out", help="OUT.npz (one file) or a folder (one .npy per utterance)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader processes decoding audio")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--strict", action="store_true", help="stop at the first file that cannot be used")
    args = parser.parse_args(argv)
    try:
        utterances = read_inputs(args.input)
        model = TDYSpeakerRecognition.from_hparams(source=args.model, run_opts={"device": args.device})
        summary = embed_utterances(model, utterances, args.out, args.batch_size, args.num_workers, args.strict)
    except (ValueError, OSError) as error:
        sys.exit(f"error: {error}")
    print(f"{summary.embedded} embedded, {summary.already_done} already done, {len(summary.bad)} bad "
          f"(model {summary.model_seconds:.1f} s, waiting for audio {summary.loader_wait_seconds:.1f} s) -> {args.out}")
    if summary.bad:
        print(f"Skipped files and the reasons: {summary.report}")


if __name__ == "__main__":
    main()
