"""speechbrain-tdy convert: a checkpoint of the authors' trainer -> a model folder."""
import argparse
import sys

from speechbrain_tdy.export.authors_checkpoint import CONVERTED_LICENSE, OFFICIAL_MODELS, convert_to_folder


def main(argv=None):
    parser = argparse.ArgumentParser(prog="speechbrain-tdy convert",
                                     description="Convert a checkpoint of the authors' trainer to a model folder.")
    parser.add_argument("checkpoint", help="checkpoint saved by the authors' trainer (__S__./__L__. keys)")
    parser.add_argument("out_dir", help="model folder to write (must not exist, see --overwrite)")
    parser.add_argument("--model", required=True, choices=sorted(OFFICIAL_MODELS), help="the authors' model name")
    parser.add_argument("--encoder-type", required=True, choices=["AVG", "SAP", "ASP"])
    parser.add_argument("--n-mels", required=True, type=int)
    parser.add_argument("--n-out", type=int, default=512, help="embedding size")
    parser.add_argument("--overwrite", action="store_true", help="replace out_dir if it is a model folder")
    parser.add_argument("--license", default=CONVERTED_LICENSE,
                        help="the model card's license (a hub license id; default unknown: the authors' to state)")
    parser.add_argument("--dataset", action="append", dest="datasets", default=[], metavar="DATASET",
                        help="hub id of a training dataset, e.g. voxceleb (repeatable)")
    args = parser.parse_args(argv)
    try:
        out = convert_to_folder(args.checkpoint, args.out_dir, args.model, args.encoder_type, args.n_mels, args.n_out,
                                overwrite=args.overwrite, license=args.license, datasets=args.datasets)
    except (ValueError, OSError) as error:
        sys.exit(f"error: {error}")
    print(f"Wrote {out}")


if __name__ == "__main__":
    main()
