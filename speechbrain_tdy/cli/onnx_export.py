"""speechbrain-tdy onnx: a model folder -> embedding_model.onnx."""
import argparse
import sys
from pathlib import Path

from speechbrain_tdy.export.onnx_graph import export_onnx
from speechbrain_tdy.storage.model_files import ONNX_FILE


def main(argv=None):
    parser = argparse.ArgumentParser(prog="speechbrain-tdy onnx", description=__doc__.split("\n\n")[0])
    parser.add_argument("model_folder", help="a model folder (from speechbrain_tdy.export or .convert)")
    parser.add_argument("out", nargs="?", help="ONNX file to write (default MODEL_FOLDER/embedding_model.onnx)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it is a graph of this exporter")
    args = parser.parse_args(argv)
    from speechbrain_tdy.inference import TDYSpeakerRecognition

    folder = Path(args.model_folder)
    if not folder.is_dir():
        sys.exit(f"error: {folder}: no such model folder")
    try:
        model = TDYSpeakerRecognition.from_hparams(source=str(folder), run_opts={"device": "cpu"})
        out = export_onnx(model, args.out or folder / ONNX_FILE, overwrite=args.overwrite)
    except (ValueError, OSError) as error:
        sys.exit(f"error: {error}")
    print(f"Wrote {out}")


if __name__ == "__main__":
    main()
