"""Checkpoints appear atomically: a save that dies midway leaves nothing to load."""
import pytest
import torch
from speechbrain.utils.checkpoints import Checkpointer, mark_as_loader, mark_as_saver, register_checkpoint_hooks

from speechbrain_tdy.storage.checkpoints import AtomicCheckpointer


@register_checkpoint_hooks
class Exploding:
    """A recoverable whose save dies, as a process killed while writing would."""

    def __init__(self):
        self.explode = False

    @mark_as_saver
    def save(self, path):
        if self.explode:
            path.write_text("half written")
            raise KeyboardInterrupt
        path.write_text("ok")

    @mark_as_loader
    def load(self, path, end_of_epoch=True):
        assert path.read_text() == "ok", "loaded a half-written file"


@pytest.mark.parametrize("checkpointer_class,survives", [(AtomicCheckpointer, True), (Checkpointer, False)])
def test_interrupted_save_leaves_the_last_complete_checkpoint(tmp_path, checkpointer_class, survives):
    model, exploding = torch.nn.Linear(3, 3), Exploding()
    checkpointer = checkpointer_class(tmp_path, {"model": model, "z_exploding": exploding})
    first = checkpointer.save_checkpoint(meta={"step": 1})
    exploding.explode = True
    with pytest.raises(KeyboardInterrupt):
        checkpointer.save_checkpoint(meta={"step": 2})
    exploding.explode = False
    fresh = checkpointer_class(tmp_path, {"model": torch.nn.Linear(3, 3), "z_exploding": Exploding()})
    if survives:
        assert [c.meta["step"] for c in fresh.list_checkpoints()] == [1]
        assert fresh.recover_if_possible().path == first.path
        fresh.save_checkpoint(meta={"step": 3})
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".partial-")], "staging folders cleaned"
    else:  # SpeechBrain's own Checkpointer: the broken checkpoint is picked up
        with pytest.raises(AssertionError, match="half-written"):
            fresh.recover_if_possible()
