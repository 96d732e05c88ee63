"""The ``speechbrain-tdy`` command: one entry point, one subcommand per tool.

    speechbrain-tdy embed MODEL INPUT OUT [...]
    speechbrain-tdy gallery MODEL GALLERY enroll|identify|list|remove ...
    speechbrain-tdy convert CHECKPOINT OUT_DIR --model ... --encoder-type ... --n-mels ...
    speechbrain-tdy export RUN_FOLDER OUT_DIR [--overwrite]
    speechbrain-tdy onnx MODEL_FOLDER [OUT] [--overwrite]
    speechbrain-tdy analysis --model MODEL --data CORPUS --out OUT_DIR [...]

``speechbrain-tdy SUBCOMMAND --help`` lists each one's options.
"""
import importlib
import sys

#: Subcommand -> (module with ``main(argv)``, one-line summary).
SUBCOMMANDS = {
    "embed": ("speechbrain_tdy.cli.embed", "embeddings of a folder, a list or a wav.scp, in batches, resumable"),
    "gallery": ("speechbrain_tdy.cli.gallery", "enrol speakers and identify recordings (open set)"),
    "convert": ("speechbrain_tdy.cli.convert", "a checkpoint of the authors' trainer -> a model folder"),
    "export": ("speechbrain_tdy.cli.export", "a recipe run -> a model folder ready for the hub"),
    "onnx": ("speechbrain_tdy.cli.onnx_export", "a model folder -> embedding_model.onnx"),
    "analysis": ("speechbrain_tdy.cli.analysis", "t-SNE / silhouette of frame embeddings, attention maps"),
}


def usage():
    """The top-level help text."""
    width = max(map(len, SUBCOMMANDS))
    lines = [f"  {name:<{width}}  {summary}" for name, (_, summary) in SUBCOMMANDS.items()]
    return "usage: speechbrain-tdy SUBCOMMAND [options]\n\nsubcommands:\n" + "\n".join(lines) + (
        "\n\n`speechbrain-tdy SUBCOMMAND --help` lists the options of each.")


def main(argv=None):
    """Run the subcommand named by ``argv[0]`` (default ``sys.argv[1:]``) with the rest."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        sys.exit(f"speechbrain-tdy: unknown subcommand {name!r}\n\n{usage()}")
    importlib.import_module(SUBCOMMANDS[name][0]).main(rest)
