"""The paper's softmax + angular prototypical loss and the AAM-softmax head."""
import pytest
import torch
import torch.nn.functional as F

from speechbrain_tdy.nnet.losses import AAMSoftmaxLoss, SoftmaxAngularPrototypicalLoss


def test_softmaxproto_equals_cross_entropy_plus_prototypical_by_hand():
    torch.manual_seed(0)
    loss = SoftmaxAngularPrototypicalLoss(emb_dim=6, n_classes=4)
    embeddings, targets = torch.randn(6, 6), torch.tensor([2, 2, 0, 0, 3, 3])
    softmax = F.cross_entropy(loss.softmax.fc(embeddings), targets)
    queries, anchors = embeddings[0::2], embeddings[1::2]
    cosine = F.normalize(queries, dim=1) @ F.normalize(anchors, dim=1).T
    proto = F.cross_entropy(10.0 * cosine - 5.0, torch.arange(3))
    torch.testing.assert_close(loss(embeddings, targets), softmax + proto)


def test_softmaxproto_rejects_batches_not_grouped_by_speaker():
    loss = SoftmaxAngularPrototypicalLoss(emb_dim=4, n_classes=3)
    with pytest.raises(ValueError, match="groups of 2"):
        loss(torch.randn(5, 4), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="share one speaker"):
        loss(torch.randn(4, 4), torch.tensor([0, 1, 1, 1]))


def test_both_heads_learn_to_separate_speakers():
    torch.manual_seed(0)
    centers = torch.randn(4, 8) * 3
    targets = torch.arange(4).repeat_interleave(2)
    for head in (SoftmaxAngularPrototypicalLoss(8, 4), AAMSoftmaxLoss(8, 4)):
        optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
        for _ in range(100):
            embeddings = centers[targets] + 0.3 * torch.randn(8, 8)
            optimizer.zero_grad()
            head(embeddings, targets).backward()
            optimizer.step()
        accuracy = (head.logits(centers[targets]).argmax(dim=1) == targets).float().mean()
        assert accuracy == 1.0
