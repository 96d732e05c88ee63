#!/usr/bin/env python3
"""Train a TDY-CNN speaker embedding model on VoxCeleb (or the mini corpus).

    python train.py hparams/tdy.yaml --data_folder=/path/to/VoxCeleb2
    torchrun --nproc_per_node=4 train.py hparams/tdy.yaml --data_folder=...
    python train.py hparams/tdy.yaml --data_folder=... --precision=bf16
    python train.py hparams/tdy.yaml --data_folder=... --grad_accumulation_factor=4
    python train.py hparams/tdy.yaml --data_folder=... --init_from=MODEL_FOLDER_OR_HUB_ID [--freeze=2]

The model maps random crops of each training utterance to embeddings, trained
with the paper's softmax + angular prototypical loss on speaker-balanced
batches, or with SpeechBrain's AAM-softmax. The TDY softmax temperature is
annealed at every step along the paper's per-epoch line (31 at the start of
epoch 1, 28 at the start of epoch 2, ..., 1 from epoch 11 on; see
``speechbrain_tdy.nnet.TemperatureScheduler``); validation
reports the speaker classification error on held-out utterances and, every
``eer_every_n_epochs``, the EER on the dev trial list; the train log also
gives each epoch's training samples per second (of this process, from its
second batch on). Waveform augmentation runs in float32 on the training
device whatever ``--precision`` is; with ``grad_accumulation_factor`` N > 1
each batch goes through the model in N micro-batches while the loss still
sees the whole batch (see ``SpeakerBrain.fit_batch``). With ``init_from`` the
embedding model starts from a model folder's parameters (fine-tuning, see
``speechbrain_tdy.inference.fine_tuning``): its TDY layers stay at the
inference temperature unless ``reanneal``, and ``freeze`` keeps its first
stages as they are.
"""
import logging
import random
import sys
import time
from pathlib import Path

import speechbrain as sb
import torch
import torch.nn.functional as F
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import if_main_process, run_on_main
from torch.nn.parallel import DistributedDataParallel

from speechbrain_tdy.dataio.audio import crop_samples, random_crop, read_segment
from speechbrain_tdy.dataio.augment import augment_waveforms
from speechbrain_tdy.dataio.augmentation_files import folder_to_csv
from speechbrain_tdy.dataio.manifest import load_manifest
from speechbrain_tdy.dataio.sampler import SpeakerBalancedBatchSampler
from speechbrain_tdy.dataio.trials import read_trials
from speechbrain_tdy.embedding.files import embed_files
from speechbrain_tdy.embedding.pipeline import EmbeddingPipeline
from speechbrain_tdy.inference.fine_tuning import freeze_stages, load_initial_parameters
from speechbrain_tdy.lobes.registry import get_architecture
from speechbrain_tdy.nnet import set_attention_input_grad
from speechbrain_tdy.scoring.metrics import error_rates
from speechbrain_tdy.scoring.scores import score_trials
from speechbrain_tdy.storage.atomic import atomic_path
from speechbrain_tdy.storage.model_files import LABELS_FILE
from speechbrain_tdy.storage.run_folder import save_epoch_checkpoint

logger = logging.getLogger(__name__)

#: Name of the dev speaker-classification error in the train log.
CLASSIFICATION_ERROR = "speaker-classification error"


class SpeakerBrain(sb.core.Brain):
    """Waveform crops -> features -> embedding -> loss head."""

    def embed(self, wavs, lens, stage=sb.Stage.TRAIN):
        """Embeddings (batch, emb_dim) of waveforms (batch, samples) with relative lengths.
        Only training steps run a model that ``--compile`` compiled: evaluation embeds
        whole utterances, and each new length would compile again."""
        model = self.modules.embedding_model
        if stage != sb.Stage.TRAIN:
            model = getattr(getattr(model, "module", model), "_orig_mod", model)  # inside DDP, torch.compile's
        return EmbeddingPipeline(self.modules.compute_features, model)(wavs, lens)

    def training_waveforms(self, batch):
        """The batch's waveforms (batch', samples') on the device, augmented in
        float32 when ``augment`` is on, and their relative lengths (batch',)."""
        wavs, lens = batch.to(self.device, non_blocking=True).sig
        if self.hparams.augment:
            wavs, lens = augment_waveforms(self.hparams.wav_augment, wavs, lens)
        return wavs, lens

    def compute_forward(self, batch, stage):
        if stage == sb.Stage.TRAIN:
            return self.embed(*self.training_waveforms(batch))
        wavs, lens = batch.to(self.device, non_blocking=True).sig
        return self.embed(wavs, lens, stage)

    def fit_batch(self, batch):
        """One optimizer step on one batch; returns the detached loss.

        With ``grad_accumulation_factor`` N > 1 the batch goes through the
        embedding model in N micro-batches, but the loss still sees the whole
        batch: the angular prototypical term takes all the batch's other
        speakers as negatives, so summing per-micro-batch losses would change
        the objective. Gradient caching keeps it:

        1. embed the N micro-batches without autograd -> (batch, emb_dim);
        2. compute the loss on all these embeddings, backpropagate it to the
           loss head and to the embeddings (their gradient, batch x emb_dim);
        3. embed each micro-batch again with autograd and backpropagate its
           rows of that gradient into the model.

        The parameter gradients are the whole batch's, except that batch norm
        normalises each micro-batch with its own statistics (the first pass
        leaves the modules' buffers as it found them, so running statistics
        are updated once per micro-batch). Activation memory is that of one
        micro-batch, at the cost of one more forward pass. The embedding model
        must be deterministic (no dropout), so that both passes agree. Unlike
        SpeechBrain's own accumulation over N successive batches, the
        optimizer steps after every batch.
        """
        n_micro = self.grad_accumulation_factor
        if n_micro == 1:
            return super().fit_batch(batch)
        self.on_fit_batch_start(batch, True)
        wavs, lens = self.training_waveforms(batch)
        if n_micro > len(wavs):
            raise ValueError(f"grad_accumulation_factor={n_micro} is larger than the batch ({len(wavs)} waveforms)")
        wav_parts, len_parts = wavs.tensor_split(n_micro), lens.tensor_split(n_micro)

        saved_buffers = [(buffer, buffer.clone()) for buffer in self.modules.buffers()]
        with torch.no_grad(), self.training_ctx:
            cached = torch.cat([self.embed(w, l) for w, l in zip(wav_parts, len_parts)])
        for buffer, saved in saved_buffers:
            buffer.copy_(saved)

        cached.requires_grad_()
        with self.training_ctx:
            loss = self.compute_objectives(cached, batch, sb.Stage.TRAIN)
        scaled_loss = self.scaler.scale(loss)
        self.check_loss_isfinite(scaled_loss)
        scaled_loss.backward()

        grad_parts = cached.grad.tensor_split(n_micro)
        for k, (w, l, grad) in enumerate(zip(wav_parts, len_parts, grad_parts)):
            with self.no_sync(k < n_micro - 1):  # DDP: all-reduce once, after the last micro-batch
                with self.training_ctx:
                    embeddings = self.embed(w, l)
                embeddings.backward(grad)
        self.optimizers_step()
        self.on_fit_batch_end(batch, cached, loss, True)
        return loss.detach().cpu()

    def compute_objectives(self, embeddings, batch, stage):
        targets = batch.spk_id_encoded.data.squeeze(1)
        if stage == sb.Stage.TRAIN:
            if self.hparams.augment:
                targets = self.hparams.wav_augment.replicate_labels(targets)
            # Augmenters may stack copies of the batch: score each copy on its own,
            # so that a speaker never meets itself as a negative.
            copies = embeddings.shape[0] // batch.batchsize
            losses = [self.modules.loss_head(e, t) for e, t in zip(embeddings.chunk(copies), targets.chunk(copies))]
            return torch.stack(losses).mean()
        loss_head = getattr(self.modules.loss_head, "module", self.modules.loss_head)  # unwrap DDP
        logits = loss_head.logits(embeddings)
        self.error_metrics.append(batch.id, logits.unsqueeze(1), targets.unsqueeze(1))
        return F.cross_entropy(logits, targets)

    def _wrap_distributed(self):
        """As Brain's, but on CPU (gloo) keep ordinary batch norm: SyncBatchNorm needs CUDA."""
        if not (self.distributed_launch and str(self.device).startswith("cpu")):
            return super()._wrap_distributed()
        for name, module in self.modules.items():
            if any(p.requires_grad for p in module.parameters()):
                self.modules[name] = DistributedDataParallel(module, find_unused_parameters=self.find_unused_parameters)

    def make_dataloader(self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs):
        """As Brain's, remembering the number of training steps per epoch (for the temperature)."""
        loader = super().make_dataloader(dataset, stage, ckpt_prefix, **loader_kwargs)
        if stage == sb.Stage.TRAIN:
            self.steps_per_epoch = len(loader)
        return loader

    def on_fit_batch_start(self, batch, should_step):
        """Set the TDY temperature and the learning rate of this step: ``self.step``
        counts this epoch's batches from 1 (and is restored with an intra-epoch checkpoint).
        Frozen stages (``freeze``) stay in eval mode, so that their batch norms keep their statistics."""
        for stage in self.frozen_stages:
            stage.eval()
        epoch, step = self.epoch_meta["epoch"], self.step - 1
        self.hparams.temperature_scheduler(self.modules.embedding_model, epoch, step, self.steps_per_epoch)
        lr = learning_rate(epoch, self.hparams.lr, self.hparams.lr_decay, self.hparams.lr_decay_every,
                           self.hparams.lr_warmup_epochs, step, self.steps_per_epoch)
        for group in self.optimizer.param_groups:  # quietly: the train log has the epoch's last rate
            group["lr"] = lr
        self.epoch_meta["lr"] = lr

    def on_stage_start(self, stage, epoch=None):
        if stage == sb.Stage.TRAIN:
            temperature = self.hparams.temperature_scheduler(self.modules.embedding_model, epoch)
            self.epoch_meta = {"epoch": epoch, "lr": None}  # lr: that of the epoch's last step
            if temperature is not None:  # a model with TDY layers
                self.epoch_meta["temperature"] = temperature
            if self.hparams.batch_sampler is not None:
                self.hparams.batch_sampler.set_epoch(epoch)
            self.clock_start, self.clock_samples = None, 0
        else:
            self.error_metrics = self.hparams.error_stats()

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Time the epoch's training from the end of its first batch (so
        without the DataLoader's start): samples per second of this process."""
        if self.clock_start is None:
            self.clock_start = time.perf_counter()
        else:
            self.clock_samples += batch.batchsize

    def on_stage_end(self, stage, stage_loss, epoch=None):
        stats = {"loss": stage_loss}
        if stage == sb.Stage.TRAIN:
            if self.clock_samples:
                stats["samples_per_s"] = self.clock_samples / (time.perf_counter() - self.clock_start)
            self.train_stats = stats
            if "temperature" in self.epoch_meta:  # the temperature of the epoch's last step, used by validation
                self.epoch_meta["temperature"] = self.hparams.temperature_scheduler.current
            return
        # Top-1 error of the loss head's speaker classifier on the dev utterances
        # (of training speakers), not a verification error rate.
        stats[CLASSIFICATION_ERROR] = self.error_metrics.summarize("average")
        if stage == sb.Stage.VALID:
            every = self.hparams.eer_every_n_epochs
            if self.dev_trials is not None and every and (epoch % every == 0 or epoch == self.hparams.number_of_epochs):
                stats.update(self.dev_trial_metrics())
            self.hparams.train_logger.log_stats(
                stats_meta=self.epoch_meta, train_stats=self.train_stats, valid_stats=stats
            )
            meta = {"ErrorRate": stats[CLASSIFICATION_ERROR]}
            meta.update({key: stats[key] for key in ("EER", "minDCF", "threshold") if key in stats})
            if "temperature" in self.epoch_meta:
                meta["temperature"] = self.epoch_meta["temperature"]
            save_epoch_checkpoint(self.checkpointer, meta)

    def dev_trial_metrics(self):
        """EER, minDCF and EER threshold on the dev trial list (main process only)."""
        if not if_main_process():
            return {}
        self.modules.eval()
        files = sorted({path for trial in self.dev_trials for path in (trial.enrol, trial.test)})
        embeddings = embed_files(
            lambda wavs, lens: self.embed(wavs.to(self.device), lens.to(self.device), sb.Stage.VALID),
            files, self.hparams.trial_wav_folder, self.hparams.sample_rate,
        )
        scores = score_trials(self.dev_trials, embeddings)
        eer, threshold, min_dcf = error_rates(scores, [t.label for t in self.dev_trials], self.hparams.p_target)
        return {"EER": eer, "minDCF": min_dcf, "threshold": threshold}


def learning_rate(epoch, lr, decay, decay_every, warmup_epochs=0, step=0, steps_per_epoch=1):
    """Learning rate of step ``step`` (0-based) of ``steps_per_epoch`` in epoch
    ``epoch`` (1-based): ``lr`` times ``decay`` every ``decay_every`` epochs,
    ramped up linearly, step by step, over the first ``warmup_epochs`` epochs
    (the k-th step of training gets k / (warmup_epochs * steps_per_epoch) of
    it). A function of (epoch, step), so a resumed run continues the schedule.

    >>> [learning_rate(1, 1.0, 0.5, 2, warmup_epochs=1, step=i, steps_per_epoch=4) for i in range(4)]
    [0.25, 0.5, 0.75, 1.0]
    >>> [learning_rate(epoch, 1.0, 0.5, 2) for epoch in (1, 2, 3, 5)]
    [1.0, 1.0, 0.5, 0.25]
    """
    done = (epoch - 1) * steps_per_epoch + step + 1
    warmup = min(1.0, done / (warmup_epochs * steps_per_epoch)) if warmup_epochs > 0 else 1.0
    return lr * warmup * decay ** ((epoch - 1) // decay_every)


def dataio_prep(hparams):
    """Datasets with the audio and label pipelines, and the fitted label encoder."""
    train_data = sb.dataio.dataset.DynamicItemDataset(load_manifest(hparams["train_annotation"]))
    valid_data = sb.dataio.dataset.DynamicItemDataset(load_manifest(hparams["valid_annotation"]))
    train_samples, sample_rate = hparams["crop_samples"], hparams["sample_rate"]
    rng = random.Random(hparams["seed"])

    @sb.utils.data_pipeline.takes("wav", "start", "stop")
    @sb.utils.data_pipeline.provides("sig")
    def train_audio(wav, start, stop):
        return random_crop(wav, train_samples, start, stop, rng, sample_rate)

    valid_frames = hparams.get("valid_crop_frames")
    valid_samples = None if valid_frames is None else crop_samples(valid_frames)

    @sb.utils.data_pipeline.takes("wav", "start", "stop")
    @sb.utils.data_pipeline.provides("sig")
    def valid_audio(wav, start, stop):
        if valid_samples is not None and stop - start > valid_samples:
            start += (stop - start - valid_samples) // 2
            stop = start + valid_samples
        return read_segment(wav, start, stop, sample_rate)

    train_data.add_dynamic_item(train_audio)
    valid_data.add_dynamic_item(valid_audio)

    label_encoder = sb.dataio.encoder.CategoricalEncoder()

    @sb.utils.data_pipeline.takes("spk_id")
    @sb.utils.data_pipeline.provides("spk_id_encoded")
    def label_pipeline(spk_id):
        return label_encoder.encode_sequence_torch([spk_id])

    sb.dataio.dataset.add_dynamic_item([train_data, valid_data], label_pipeline)
    label_encoder_file = Path(hparams["save_folder"]) / LABELS_FILE
    speakers = {row["spk_id"] for row in train_data.data.values()}
    run_on_main(write_label_encoder, args=[speakers, label_encoder_file])  # every process: a barrier
    label_encoder.load(label_encoder_file)
    if set(label_encoder.lab2ind) != speakers:
        raise ValueError(f"{label_encoder_file} holds other speakers than the training list "
                         f"({len(label_encoder.lab2ind)} against {len(speakers)}): this output folder was "
                         "trained on other data; use a new output_folder")
    label_encoder.expect_len(len(speakers))
    sb.dataio.dataset.set_output_keys([train_data, valid_data], ["id", "sig", "spk_id_encoded"])
    # Sorted by duration, so that validation batches hold little padding.
    valid_data = valid_data.filtered_sorted(
        key_test={"spk_id": lambda s: s in label_encoder.lab2ind}, sort_key="duration"
    )
    return train_data, valid_data, label_encoder


def write_label_encoder(speakers, path):
    """Save a speaker -> index encoder of ``speakers`` (in sorted order) to
    ``path``, atomically, unless a (resumed) run already has one."""
    if path.is_file():
        return
    encoder = sb.dataio.encoder.CategoricalEncoder()
    encoder.update_from_iterable(sorted(speakers))
    with atomic_path(path) as partial:
        encoder.save(partial)


def prepare_augmentation(hparams):
    """CSV files for the NoiseBank / AddReverb from the local noise and RIR folders."""
    if not hparams["augment"]:
        return
    for folder_key, csv_key in (("noise_folder", "noise_annotation"), ("rir_folder", "rir_annotation")):
        if hparams.get(folder_key):
            folder_to_csv(hparams[folder_key], hparams[csv_key])


def start_from_model(hparams):
    """``init_from``: the embedding model starts from a model folder's
    parameters, at the inference temperature unless ``reanneal`` (a trained
    model's attention is not made uniform again). Returns the frozen stages."""
    if hparams["init_from"]:
        architecture = get_architecture(hparams["architecture"])
        load_initial_parameters(hparams["embedding_model"], architecture.name, architecture.values_in(hparams),
                                hparams["init_from"])
        if not hparams["reanneal"]:
            scheduler = hparams["temperature_scheduler"]
            scheduler.initial = scheduler.current = scheduler.final
    return freeze_stages(hparams["embedding_model"], hparams["freeze"])


def setup(argv):
    """Everything ``main`` does before training: parse ``argv`` (train.py's
    command line), prepare the data, build the Brain. Returns the Brain and
    the keyword arguments of its ``fit``."""
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    with open(hparams_file, encoding="utf-8") as stream:
        hparams = load_hyperpyyaml(stream, overrides)
    sb.utils.distributed.ddp_init_group(run_opts)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )

    frozen_stages = start_from_model(hparams)  # before data preparation: a wrong folder is refused at once
    from voxceleb_prepare import prepare_voxceleb  # noqa: E402, the recipe folder is on sys.path

    run_on_main(prepare_voxceleb, kwargs=hparams["prepare_kwargs"])
    run_on_main(prepare_augmentation, kwargs={"hparams": hparams})

    if hparams["loss"] not in hparams["loss_heads"]:
        raise ValueError(f"loss must be one of {', '.join(hparams['loss_heads'])}, got {hparams['loss']!r}")
    set_attention_input_grad(hparams["embedding_model"], hparams["attention_input_grad"])
    train_data, valid_data, label_encoder = dataio_prep(hparams)
    loss_head = hparams["loss_heads"][hparams["loss"]](n_classes=len(label_encoder))
    hparams["modules"]["loss_head"] = loss_head
    hparams["checkpointer"].add_recoverable("loss_head", loss_head)

    train_loader_kwargs = dict(hparams["dataloader_options"])
    hparams["batch_sampler"] = None
    if hparams["loss"] == "softmaxproto":
        speakers = [row["spk_id"] for row in train_data.data.values()]
        hparams["batch_sampler"] = SpeakerBalancedBatchSampler(
            speakers, hparams["batch_speakers"], hparams["n_per_speaker"], seed=hparams["seed"]
        )
        train_loader_kwargs = {
            "batch_sampler": hparams["batch_sampler"],
            "num_workers": train_loader_kwargs.get("num_workers", 0),
        }

    brain = SpeakerBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.frozen_stages = frozen_stages
    # Page-locked batches, so that compute_forward's copy to the GPU does not block.
    train_loader_kwargs["pin_memory"] = brain.device_type == "cuda"
    brain.dev_trials = read_trials(hparams["dev_verification_file"]) if hparams.get("dev_verification_file") else None
    return brain, dict(
        epoch_counter=brain.hparams.epoch_counter,
        train_set=train_data,
        valid_set=valid_data,
        train_loader_kwargs=train_loader_kwargs,
        valid_loader_kwargs=hparams["valid_dataloader_options"],
    )


def main(argv):
    brain, fit_kwargs = setup(argv)
    brain.fit(**fit_kwargs)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (ValueError, OSError) as error:  # bad input: the message names the file, line or setting
        sys.exit(f"error: {error}")
