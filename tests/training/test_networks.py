"""The networks: ImageNet weights load strictly, SAME padding is TF's, the ordinal head is coherent."""

import pytest
import torch

from training.networks import (
    SameConv2d,
    build_network,
    exceedance_to_grade_probs,
    imagenet_lite0,
    ordinal_loss,
    ordinal_targets,
)


def test_imagenet_weights_load_strictly_and_classify():
    net = imagenet_lite0().eval()  # load_state_dict(strict=True) inside: a renamed key fails here
    with torch.no_grad():
        logits = net(torch.zeros(1, 3, 224, 224))
    assert logits.shape == (1, 1000)
    assert torch.isfinite(logits).all()


def test_same_padding_matches_tensorflow_for_stride_two():
    conv = SameConv2d(1, 1, 3, stride=2)
    torch.nn.init.ones_(conv.weight)
    x = torch.ones(1, 1, 4, 4)
    y = conv(x)
    # TF SAME on 4x4, k3, s2: pad 0 before, 1 after -> outputs at rows 0, 2: the last row sees padding
    assert y.shape == (1, 1, 2, 2)
    assert y[0, 0, 0, 0] == 9 and y[0, 0, 1, 1] == 4


@pytest.mark.parametrize("arch", ["efficientnet_lite0", "mobilenet_v3_small"])
def test_ordinal_head_probabilities_are_coherent(arch):
    net = build_network(arch, pretrained=False).eval()
    with torch.no_grad():
        p_ge = torch.sigmoid(net(torch.randn(3, 3, 224, 224) * 3))
    assert p_ge.shape == (3, 3)
    assert (p_ge[:, :-1] >= p_ge[:, 1:]).all()  # P(>=1) >= P(>=2) >= P(>=3) by construction
    probs = exceedance_to_grade_probs(p_ge)
    torch.testing.assert_close(probs.sum(1), torch.ones(3))


def test_binary_rows_supervise_only_the_first_cut_point():
    grade = torch.tensor([-1, -1, 0, 2])
    damaged = torch.tensor([1, 0, 0, 1])
    targets, mask = ordinal_targets(grade, damaged)
    assert targets.tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 0], [1, 1, 0]]
    assert mask.tolist() == [[1, 0, 0], [1, 0, 0], [1, 1, 1], [1, 1, 1]]
    # changing the unsupervised logits of binary rows leaves the loss unchanged
    logits = torch.zeros(4, 3)
    moved = logits.clone()
    moved[0, 1:] = 5.0
    assert ordinal_loss(logits, grade, damaged) == ordinal_loss(moved, grade, damaged)
