"""Which checkpoint of a train.py run is used for inference."""
from pathlib import Path

import torch
from speechbrain.utils.checkpoints import Checkpoint

from speechbrain_tdy.lobes import ResNet
from speechbrain_tdy.nnet import TemperatureScheduler
from speechbrain_tdy.storage.checkpoints import AtomicCheckpointer, read_checkpoint_meta
from speechbrain_tdy.storage.run_folder import best_checkpoint, checkpoint_preference, save_epoch_checkpoint


def checkpoint(name, **meta):
    return Checkpoint(Path(name), meta, {})


def test_checkpoints_still_annealing_are_not_chosen_for_inference():
    annealing = checkpoint("annealing", ErrorRate=0.1, temperature=7.0)
    final_worse = checkpoint("final_worse", ErrorRate=0.4, temperature=1.0)
    final_better = checkpoint("final_better", ErrorRate=0.3, temperature=1.0)
    assert best_checkpoint([annealing, final_worse, final_better]) is final_better
    ranked = sorted([annealing, final_worse, final_better], key=checkpoint_preference, reverse=True)
    assert [c.path.name for c in ranked] == ["final_better", "final_worse", "annealing"]


def test_dev_eer_decides_over_classification_error():
    low_error = checkpoint("low_error", ErrorRate=0.1, EER=20.0, temperature=1.0)
    low_eer = checkpoint("low_eer", ErrorRate=0.2, EER=10.0, temperature=1.0)
    assert best_checkpoint([low_error, low_eer]) is low_eer
    no_eer = checkpoint("no_eer", ErrorRate=0.05, temperature=1.0)  # an epoch between eer_every_n_epochs
    assert best_checkpoint([low_error, low_eer, no_eer]) is low_eer
    assert best_checkpoint([no_eer, checkpoint("worse", ErrorRate=0.5, temperature=1.0)]) is no_eer


def test_training_keeps_the_checkpoint_that_inference_will_choose(tmp_path):
    """The epoch with the best dev EER has the worst classification error: it
    must survive the deletions of later epochs and be the one chosen."""
    checkpointer = AtomicCheckpointer(tmp_path, {"model": torch.nn.Linear(2, 2)})
    for epoch, (error_rate, eer) in enumerate([(0.5, 5.0), (0.3, 9.0), (0.2, 8.0), (0.25, 7.0)], start=1):
        save_epoch_checkpoint(checkpointer, {"epoch": epoch, "ErrorRate": error_rate, "EER": eer, "temperature": 1.0})
    kept = checkpointer.list_checkpoints()
    assert sorted(c.meta["epoch"] for c in kept) == [1, 3, 4]  # the two best by dev EER and the two latest
    assert best_checkpoint(kept).meta["epoch"] == 1


def test_non_finite_metrics_are_left_out_of_a_checkpoint_and_it_reads_back(tmp_path, caplog):
    checkpointer = AtomicCheckpointer(tmp_path, {"model": torch.nn.Linear(2, 2)})
    save_epoch_checkpoint(checkpointer, {"ErrorRate": 0.5, "EER": float("nan"), "minDCF": float("inf")})
    assert "non-finite EER, minDCF" in caplog.text
    (saved,) = checkpointer.list_checkpoints()
    assert read_checkpoint_meta(saved.path / "CKPT.yaml")["ErrorRate"] == 0.5
    assert "EER" not in saved.meta and "minDCF" not in saved.meta


def test_a_run_stopped_while_annealing_still_gives_a_checkpoint(caplog):
    only = [checkpoint("a", ErrorRate=0.5, temperature=25.0), checkpoint("b", ErrorRate=0.4, temperature=19.0)]
    assert best_checkpoint(only).path.name == "b"
    assert "annealing" in caplog.text


def test_static_models_have_no_temperature_and_are_always_candidates():
    static = ResNet(n_mels=24, channels=(4, 4, 4, 4), layers=(1, 1, 1, 1), conv="static", lin_neurons=8)
    assert TemperatureScheduler()(static, epoch=1) is None
    assert best_checkpoint([checkpoint("s", ErrorRate=0.5)]).path.name == "s"


def test_intra_epoch_checkpoints_rank_last_and_serve_only_when_alone():
    intra = checkpoint("intra", unixtime=2.0, **{"end-of-epoch": False})
    epoch = checkpoint("epoch", ErrorRate=0.9, temperature=1.0, unixtime=1.0)
    assert best_checkpoint([intra, epoch]) is epoch
    assert sorted([intra, epoch], key=checkpoint_preference)[0] is intra
    assert best_checkpoint([checkpoint("old", unixtime=1.0), intra]) is intra


def test_equal_checkpoints_resolve_to_the_latest_whatever_the_listing_order():
    # Checkpointer.list_checkpoints follows the file system's order; a tie must not depend on it.
    earlier = checkpoint("e10", ErrorRate=0.6875, temperature=1.0, unixtime=10.0)
    later = checkpoint("e11", ErrorRate=0.6875, temperature=1.0, unixtime=11.0)
    for listed in ([earlier, later], [later, earlier]):
        assert best_checkpoint(listed) is later
        assert sorted(listed, key=checkpoint_preference, reverse=True)[0] is later
    with_eer = [checkpoint(n, ErrorRate=0.5, EER=8.0, temperature=1.0, unixtime=t) for n, t in (("a", 2.0), ("b", 1.0))]
    assert best_checkpoint(with_eer).path.name == "a" and best_checkpoint(with_eer[::-1]).path.name == "a"
