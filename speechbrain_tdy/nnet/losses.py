"""The paper's training loss: softmax cross-entropy + angular prototypical.

Batches hold ``n_per_speaker`` utterances of each of their speakers (see
:class:`speechbrain_tdy.dataio.sampler.SpeakerBalancedBatchSampler`). The
angular prototypical term compares the first utterance of every speaker with
the centroid of that speaker's other utterances on a learnable affine scale of
cosine similarity (w = 10, b = -5 at the start). Parameter names follow the
authors' loss head (``softmax.fc``, ``angleproto.w``, ``angleproto.b``).
"""
import torch
import torch.nn.functional as F
from torch import nn


class SoftmaxHead(nn.Module):
    """Linear speaker classifier trained with cross-entropy."""

    def __init__(self, emb_dim, n_classes):
        super().__init__()
        self.fc = nn.Linear(emb_dim, n_classes)

    def forward(self, embeddings):
        """embeddings: (batch, emb_dim) -> logits (batch, n_classes)."""
        return self.fc(embeddings)


class AngularPrototypical(nn.Module):
    """Angular prototypical loss with learnable scale ``w`` and bias ``b``."""

    def __init__(self, init_w=10.0, init_b=-5.0):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(float(init_w)))
        self.b = nn.Parameter(torch.tensor(float(init_b)))

    def forward(self, embeddings):
        """embeddings: (n_speakers, n_per_speaker >= 2, emb_dim) -> scalar loss."""
        anchors = embeddings[:, 1:].mean(dim=1)
        queries = embeddings[:, 0]
        cosine = F.cosine_similarity(queries.unsqueeze(-1), anchors.unsqueeze(-1).transpose(0, 2))
        logits = cosine * self.w.clamp(min=1e-6) + self.b
        return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


class SoftmaxAngularPrototypicalLoss(nn.Module):
    """Softmax cross-entropy + angular prototypical ("softmaxproto").

    Arguments
    ---------
    emb_dim : int
        Embedding size.
    n_classes : int
        Number of training speakers.
    n_per_speaker : int
        Consecutive utterances per speaker in a batch (2 in the paper).

    Example
    -------
    >>> loss = SoftmaxAngularPrototypicalLoss(emb_dim=8, n_classes=5)
    >>> embeddings = torch.randn(6, 8)   # 3 speakers x 2 utterances
    >>> targets = torch.tensor([0, 0, 3, 3, 1, 1])
    >>> loss(embeddings, targets).shape
    torch.Size([])
    """

    def __init__(self, emb_dim, n_classes, n_per_speaker=2, init_w=10.0, init_b=-5.0):
        super().__init__()
        if n_per_speaker < 2:
            raise ValueError(f"The prototypical loss needs n_per_speaker >= 2, got {n_per_speaker}")
        self.n_per_speaker = n_per_speaker
        self.softmax = SoftmaxHead(emb_dim, n_classes)
        self.angleproto = AngularPrototypical(init_w, init_b)

    def logits(self, embeddings):
        """embeddings: (batch, emb_dim) -> speaker logits (batch, n_classes)."""
        return self.softmax(embeddings)

    def forward(self, embeddings, targets):
        """embeddings: (batch, emb_dim) grouped by speaker; targets: (batch,) class ids."""
        batch = embeddings.shape[0]
        if batch % self.n_per_speaker:
            raise ValueError(
                f"Batch of {batch} is not made of groups of {self.n_per_speaker} utterances per speaker; "
                "use SpeakerBalancedBatchSampler"
            )
        grouped = embeddings.view(batch // self.n_per_speaker, self.n_per_speaker, -1)
        if not bool((targets.view(grouped.shape[:2]) == targets.view(grouped.shape[:2])[:, :1]).all()):
            raise ValueError("Each group of consecutive utterances must share one speaker")
        return F.cross_entropy(self.softmax(embeddings), targets) + self.angleproto(grouped)


class AAMSoftmaxLoss(nn.Module):
    """SpeechBrain's additive angular margin softmax, with the same call as
    :class:`SoftmaxAngularPrototypicalLoss` (``forward(embeddings, targets)``,
    ``logits(embeddings)``).

    Example
    -------
    >>> loss = AAMSoftmaxLoss(emb_dim=8, n_classes=5)
    >>> loss(torch.randn(4, 8), torch.tensor([0, 1, 2, 4])).shape
    torch.Size([])
    """

    def __init__(self, emb_dim, n_classes, margin=0.2, scale=30.0):
        super().__init__()
        from speechbrain.lobes.models.ECAPA_TDNN import Classifier
        from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper

        self.classifier = Classifier(input_size=emb_dim, lin_blocks=0, out_neurons=n_classes)
        self.cost = LogSoftmaxWrapper(AdditiveAngularMargin(margin=margin, scale=scale))
        self.scale = scale

    def logits(self, embeddings):
        """embeddings: (batch, emb_dim) -> scaled cosine logits (batch, n_classes)."""
        return self.scale * self.classifier(embeddings.unsqueeze(1)).squeeze(1)

    def forward(self, embeddings, targets):
        """embeddings: (batch, emb_dim); targets: (batch,) class ids."""
        cosine = self.classifier(embeddings.unsqueeze(1))
        return self.cost(cosine, targets.unsqueeze(1))
