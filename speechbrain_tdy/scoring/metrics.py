"""Error rates of a trial list: EER and minDCF."""
import torch
from speechbrain.utils.metric_stats import EER, minDCF


def error_rates(scores, labels, p_target=0.05):
    """EER (percent), its threshold, and minDCF at ``p_target``.

    >>> eer, threshold, min_dcf = error_rates(torch.tensor([0.9, 0.8, 0.3, 0.1]), torch.tensor([1, 1, 0, 0]))
    >>> eer
    0.0
    """
    labels = torch.as_tensor(labels).bool()
    positives, negatives = scores[labels], scores[~labels]
    if len(positives) == 0 or len(negatives) == 0:
        raise ValueError("Trials need both target and non-target pairs to compute an EER")
    eer, threshold = EER(positives, negatives)
    min_dcf, _ = minDCF(positives, negatives, p_target=p_target)
    return 100.0 * float(eer), float(threshold), float(min_dcf)
