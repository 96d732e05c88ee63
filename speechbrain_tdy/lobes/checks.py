"""Input checks shared by the lobes, with messages that say what was expected."""


def check_features(x, n_mels, model_name):
    """Raise ValueError unless x is (batch, time, n_mels) features."""
    if x.dim() != 3:
        raise ValueError(
            f"{model_name} expects features of shape (batch, time, {n_mels}), "
            f"got a tensor of rank {x.dim()} with shape {tuple(x.shape)}"
        )
    if x.shape[-1] != n_mels:
        raise ValueError(
            f"{model_name} was built for n_mels={n_mels}, got features with "
            f"{x.shape[-1]} mel bins (shape {tuple(x.shape)}); features are (batch, time, n_mels)"
        )
