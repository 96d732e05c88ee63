"""Enrol speakers in a gallery and identify recordings, from the command line.

    speechbrain-tdy gallery MODEL GALLERY enroll NAME FILES...
    speechbrain-tdy gallery MODEL GALLERY identify FILES... [--top-k K] [--p-unknown P | --threshold T]
    speechbrain-tdy gallery MODEL GALLERY list
    speechbrain-tdy gallery MODEL GALLERY remove NAME

``identify`` prints, per file, its ``K`` most likely answers and their
values. With a model calibrated to log-likelihood ratios the answers are the
enrolled speakers and ``unknown``, with their posteriors at the prior
``--p-unknown`` (default 0.5) that the speaker is none of the enrolled ones:
the first answer is the most probable, and a higher prior rejects more. With
``--threshold`` (a score), or a model calibrated before LLRs (only an EER
threshold), the values are scores, and a speaker scoring at or below the
threshold is printed as ``unknown``. Scores are cosine similarities, or
s-norm / as-norm scores when the model was calibrated for them
(``--score-norm`` to choose), exactly as in ``verify_files``. GALLERY is a
folder in the format of :mod:`speechbrain_tdy.inference.gallery`.
"""
import argparse
import sys
from pathlib import Path

from speechbrain_tdy.inference.gallery import SpeakerGallery
from speechbrain_tdy.inference.interface import TDYSpeakerRecognition


def main(argv=None):
    parser = argparse.ArgumentParser(prog="speechbrain-tdy gallery", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model folder or hub id")
    parser.add_argument("gallery", help="gallery folder (created by the first enroll)")
    parser.add_argument("--device", default="cpu")
    commands = parser.add_subparsers(dest="command", required=True)
    enroll = commands.add_parser("enroll", help="add recordings of a speaker (new or known)")
    enroll.add_argument("name")
    enroll.add_argument("files", nargs="+")
    identify = commands.add_parser("identify", help="print the most likely speakers (or unknown) of each file")
    identify.add_argument("files", nargs="+")
    identify.add_argument("--top-k", type=int, default=1)
    decision = identify.add_mutually_exclusive_group()
    decision.add_argument("--p-unknown", type=float, default=None,
                          help="prior that a file's speaker is not enrolled (default 0.5); needs a model calibrated "
                               "to log-likelihood ratios")
    decision.add_argument("--threshold", type=float, default=None,
                          help="score threshold instead of posteriors (default: the model's calibration)")
    identify.add_argument("--score-norm", choices=["calibrated", "none", "s-norm", "as-norm"], default="calibrated")
    commands.add_parser("list", help="enrolled speakers and their numbers of recordings")
    remove = commands.add_parser("remove", help="forget a speaker")
    remove.add_argument("name")
    args = parser.parse_args(argv)
    try:
        run(args)
    except (ValueError, KeyError, OSError) as error:
        sys.exit(f"error: {error.args[0] if isinstance(error, KeyError) else error}")


def run(args):
    """Carry out one parsed command line of :func:`main`. ``enroll`` and
    ``remove`` hold the gallery's lock from reading it to saving it, so that
    a second command changing it at the same time stops at once instead of
    losing a change."""
    folder = Path(args.gallery)
    if args.command == "list":
        gallery = SpeakerGallery.load(folder)
        for name in gallery.names:
            print(f"{name}\t{gallery.recordings(name)}")
        return
    if args.command == "remove":
        with SpeakerGallery.editing(folder, create=False) as gallery:
            gallery.remove(args.name)
        print(f"Removed {args.name} from {folder}")
        return
    model = TDYSpeakerRecognition.from_hparams(source=args.model, run_opts={"device": args.device})
    if args.command == "enroll":
        with SpeakerGallery.editing(folder) as gallery:
            model.gallery = gallery
            model.enroll(args.name, args.files)
        print(f"Enrolled {len(args.files)} recording(s) of {args.name} in {folder} "
              f"({gallery.recordings(args.name)} in all)")
        return
    model.gallery = SpeakerGallery.load(folder)
    score_norm = None if args.score_norm == "none" else args.score_norm
    for path in args.files:
        names, values = model.identify(path, top_k=args.top_k, threshold=args.threshold, score_norm=score_norm,
                                       p_unknown=args.p_unknown)
        print("\t".join([path] + [f"{name} {value:.4f}" for name, value in zip(names, values.tolist())]))


if __name__ == "__main__":
    main()
