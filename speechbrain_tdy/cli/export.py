"""speechbrain-tdy export: a recipe run -> a model folder."""
import argparse
import sys

from speechbrain_tdy.export.model_folder import DEFAULT_LICENSE
from speechbrain_tdy.export.run import export


def main(argv=None):
    parser = argparse.ArgumentParser(prog="speechbrain-tdy export", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_folder", help="output folder of the recipe's train.py")
    parser.add_argument("out_dir", help="model folder to write (must not exist, see --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace out_dir if it is a model folder")
    parser.add_argument("--license", default=DEFAULT_LICENSE, help="the model card's license (a hub license id)")
    parser.add_argument("--dataset", action="append", dest="datasets", metavar="DATASET",
                        help="hub id of a training dataset (repeatable; default: recognised from the data folder)")
    args = parser.parse_args(argv)
    try:
        out = export(args.run_folder, args.out_dir, overwrite=args.overwrite, license=args.license,
                     datasets=args.datasets)
    except (ValueError, OSError) as error:
        sys.exit(f"error: {error}")
    print(f"Exported {args.run_folder} to {out}")


if __name__ == "__main__":
    main()
