"""``speechbrain_tdy.inference.pretrainer.TDYPretrainer``: the name every model
folder's ``hyperparams.yaml`` gives its parameter loader, kept so that published
folders keep loading. The class lives in :mod:`speechbrain_tdy.storage.pretrainer`."""
from speechbrain_tdy.storage.pretrainer import TDYPretrainer, WrongInterfaceError

__all__ = ["TDYPretrainer", "WrongInterfaceError"]
