"""Export a model trained by the recipe as a model folder ready for the hub.

    python -m speechbrain_tdy.export RECIPE_OUTPUT_DIR OUT_DIR

RECIPE_OUTPUT_DIR is the ``output_folder`` of ``train.py`` (best checkpoint:
lowest dev EER, else lowest classification error). Run ``verify.py`` first to
ship the decision threshold calibrated on the dev list (``threshold.json``),
the cohort for score normalisation and the measured EER in the model card.
See :mod:`speechbrain_tdy.model_folder` for the folder's contents.
"""
import argparse
import json
import sys
from pathlib import Path

import torch
from speechbrain.dataio.encoder import CategoricalEncoder

from speechbrain_tdy.inference.interface import read_calibration
from speechbrain_tdy.model_folder import model_card, write_model_folder
from speechbrain_tdy.training_run import load_training_run

# Top-level training hyperparameters that the inference files share.
SHARED_KEYS = ("n_mels", "emb_dim", "pooling", "channels")


def export(run_folder, out_dir):
    """Write the model folder of the train.py run in ``run_folder`` to ``out_dir``."""
    run_folder = Path(run_folder)
    train_hparams, checkpoint = load_training_run(run_folder)
    if checkpoint is None:
        raise ValueError(f"{run_folder} has no checkpoint to export (train.py saves one per epoch)")
    front_end, encoder = train_hparams["compute_features"], train_hparams["embedding_model"]
    values = {key: train_hparams[key] for key in SHARED_KEYS if key in train_hparams}
    calibration = cohort = None
    if (run_folder / "threshold.json").is_file():
        calibration = read_calibration(run_folder / "threshold.json")
    if (run_folder / "cohort_embeddings.pt").is_file():
        cohort = torch.load(run_folder / "cohort_embeddings.pt", map_location="cpu", weights_only=True)
    label_encoder = Path(train_hparams["save_folder"]) / "label_encoder.txt"
    card = model_card(
        title=f"{train_hparams['architecture']} trained with speechbrain-tdy",
        architecture=train_hparams["architecture"],
        values=values,
        n_parameters=sum(p.numel() for p in encoder.parameters()),
        training=training_summary(train_hparams, checkpoint, label_encoder),
        results=results_summary(run_folder / "verification" / "results.json", train_hparams),
        calibration=calibration,
    )

    def reference(wavs):
        return encoder(front_end(wavs)).squeeze(1)

    return write_model_folder(
        out_dir, train_hparams["architecture"], values, encoder.state_dict(), reference, card,
        calibration=calibration, cohort=cohort, label_encoder=label_encoder if label_encoder.is_file() else None,
    )


def training_summary(train_hparams, checkpoint, label_encoder):
    speakers = ""
    if label_encoder.is_file():
        encoder = CategoricalEncoder()
        encoder.load(label_encoder)
        speakers = f" ({len(encoder)} speakers)"
    meta = ", ".join(f"{key} {value:.4g}" for key, value in checkpoint.meta.items() if key in ("EER", "ErrorRate"))
    return (
        f"Trained with the speechbrain-tdy VoxCeleb recipe on `{train_hparams['data_folder']}`{speakers}: "
        f"loss {train_hparams['loss']}, crops of {train_hparams['crop_frames']} frames, "
        f"{train_hparams['number_of_epochs']} epochs. Exported checkpoint: `{checkpoint.path.name}` (dev {meta})."
    )


def results_summary(results_file, train_hparams):
    if not results_file.is_file():
        return None
    results = json.loads(results_file.read_text())
    return (
        f"EER {results['EER']:.2f}%, minDCF(p_target=0.05) {results['minDCF']:.3f} on {results['n_trials']} trials "
        f"of `{train_hparams['verification_file']}` (the recipe's verify.py)."
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_folder", help="output folder of the recipe's train.py")
    parser.add_argument("out_dir", help="model folder to write (replaced if it exists)")
    args = parser.parse_args(argv)
    try:
        out = export(args.run_folder, args.out_dir)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    print(f"Exported {args.run_folder} to {out}")


if __name__ == "__main__":
    main()
