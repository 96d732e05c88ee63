"""Embed many audio files in batches.

    speechbrain-tdy embed MODEL INPUT OUT [--batch-size 1] [--num-workers 2]
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

Files are decoded in DataLoader workers and, by default, embedded one at a
time: each gets exactly ``embed_file``'s embedding (and verify.py's).
``--batch-size N`` embeds batches of N files of similar durations: faster,
and the same embeddings up to float rounding (padding does not change an
embedding, but a batch rounds differently from one file alone, and a TDY
model's attention can amplify that). Finished batches are written at once under
temporary names then renamed (``OUT.parts/`` for ``.npz``, merged at the
end), so a killed run loses at most the batch in flight and a rerun skips
what is done. Files that cannot be used are skipped and listed with the
reason in ``OUT.bad_files.txt`` (``OUT/bad_files.txt`` for a folder), the
report of the last run that had one; ``--strict`` stops at the first one
instead.

One run at a time writes to OUT: it holds the lock file ``OUT.lock``, and a
second run stops at once naming it (a run that was killed leaves it behind:
remove it once no run is left). An existing OUT (or report) that this
command did not write for the same model is refused, never replaced.
"""
import argparse
import sys

from speechbrain_tdy.dataio.inputs import read_inputs
from speechbrain_tdy.embedding.batch import embed_utterances
from speechbrain_tdy.inference.interface import TDYSpeakerRecognition


def main(argv=None):
    parser = argparse.ArgumentParser(prog="speechbrain-tdy embed", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model folder or hub id")
    parser.add_argument("input", help="folder of audio files, wav.scp, or text list of paths")
    parser.add_argument("out", help="OUT.npz (one file) or a folder (one .npy per utterance)")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="files per batch (1: each alone, exactly embed_file's embeddings; more: faster)")
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
    elif summary.report:
        print(f"No file was skipped ({summary.report} says so now)")


if __name__ == "__main__":
    main()
