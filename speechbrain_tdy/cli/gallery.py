"""Enrol speakers in a gallery and identify recordings, from the command line.

    speechbrain-tdy gallery MODEL GALLERY enroll NAME FILES...
    speechbrain-tdy gallery MODEL GALLERY identify FILES... [--top-k K] [--threshold T]
    speechbrain-tdy gallery MODEL GALLERY list
    speechbrain-tdy gallery MODEL GALLERY remove NAME

``identify`` prints, per file, the best ``K`` speakers and their scores; a
speaker scoring at or below the model's calibrated threshold (or
``--threshold``) is printed as ``unknown``. Scores are cosine similarities,
or s-norm / as-norm scores when the model's threshold was calibrated for
them (``--score-norm`` to choose), exactly as in ``verify_files``. GALLERY is
a folder in the format of :mod:`speechbrain_tdy.inference.gallery`.
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
    identify = commands.add_parser("identify", help="print the best-scoring speakers of each file")
    identify.add_argument("files", nargs="+")
    identify.add_argument("--top-k", type=int, default=1)
    identify.add_argument("--threshold", type=float, default=None, help="default: the model's calibrated one")
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
        names, scores = model.identify(path, top_k=args.top_k, threshold=args.threshold, score_norm=score_norm)
        print("\t".join([path] + [f"{name} {score:.4f}" for name, score in zip(names, scores.tolist())]))


if __name__ == "__main__":
    main()
