"""Class-balanced pair sampling (docs/protocol.md section 3)."""
import pytest
import torch

from src.errors import UserError
from src.sampler import PairSampler


def test_classes_are_balanced_and_samples_uniform_within():
    # very unbalanced classes: 1, 10 and 200 samples
    labels = torch.cat([torch.zeros(1), torch.ones(10), torch.full((200,), 2.0)]).long()
    s = PairSampler(labels, 3, seed=0)
    pos, neg = s.draw(60000)
    freq = torch.bincount(labels[pos], minlength=3).float() / 60000
    assert torch.allclose(freq, torch.full((3,), 1 / 3), atol=0.01)
    within = torch.bincount(pos[labels[pos] == 1] - 1, minlength=10).float()
    assert within.min() > 0.8 * within.mean()                  # uniform within the class
    assert not bool((labels[neg] == labels[pos]).any())        # a negative is of another class
    # given the positive's class, the negative's class is uniform over the others
    for c in range(3):
        others = labels[neg][labels[pos] == c]
        f = torch.bincount(others, minlength=3).float() / len(others)
        assert f[c] == 0 and torch.allclose(f[torch.arange(3) != c], torch.full((2,), 0.5), atol=0.02)


def test_seeded_and_resumable():
    labels = torch.randint(0, 5, (100,), generator=torch.Generator().manual_seed(1))
    a, b = PairSampler(labels, 5, seed=3), PairSampler(labels, 5, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.draw(50), b.draw(50)))
    state = a.state_dict()
    first = a.draw(20)
    b.load_state_dict(state)
    assert all(torch.equal(x, y) for x, y in zip(first, b.draw(20)))


def test_negatives_fixed_for_validation():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    neg = PairSampler(labels, 3, seed=0).negatives(labels)
    assert neg.shape == labels.shape and not bool((labels[neg] == labels).any())


def test_needs_two_classes():
    with pytest.raises(UserError, match="two classes"):
        PairSampler(torch.zeros(5, dtype=torch.long), 1, seed=0)
