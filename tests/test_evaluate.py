"""Calibrated stacking on hand-computed examples (docs/protocol.md section 4)."""
import pytest
import torch

from src.evaluate import BETA_GRID, combined_beta, evaluate_distances, format_line, gzsl_scores, zsl_score

# 3 classes: 0 and 1 seen, 2 unseen; 4 samples with labels 0, 1, 2, 2
DIST = torch.tensor([[0.1, 0.5, 0.3],     # label 0: correct at any beta <= 0.2 (0.1+b vs 0.3)
                     [0.9, 0.2, 0.6],     # label 1: correct while 0.2+b < 0.6 -> b < 0.4
                     [0.5, 0.4, 0.45],    # label 2: wrong at b=0 (0.4 < 0.45), right for b > 0.05
                     [0.2, 0.9, 0.1]])    # label 2: right at any b
LABELS = torch.tensor([0, 1, 2, 2])
SEEN = torch.tensor([True, True, False])


def test_beta_zero_is_a_fixed_beta():
    r = evaluate_distances(DIST, LABELS, SEEN, beta=0.0)
    # predictions 0, 1, 1, 2 -> recall class0 1, class1 1, class2 1/2
    assert r["beta"] == 0.0
    assert r["seen"] == pytest.approx(1.0) and r["unseen"] == pytest.approx(0.5)
    assert r["hm"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert r["recall"].tolist() == pytest.approx([1.0, 1.0, 0.5])


def test_beta_that_flips_a_prediction():
    r = evaluate_distances(DIST, LABELS, SEEN, beta=0.1)
    # sample 2: 0.5+0.1, 0.4+0.1=0.5, 0.45 -> class 2 (flipped); sample 0: 0.2 vs 0.3 -> still 0
    assert r["unseen"] == pytest.approx(1.0) and r["seen"] == pytest.approx(1.0)
    assert r["hm"] == pytest.approx(1.0, abs=1e-6)
    r = evaluate_distances(DIST, LABELS, SEEN, beta=0.5)
    # sample 0: 0.6 vs 0.3 -> class 2 (wrong); sample 1: 0.7 vs 0.6 -> class 2 (wrong)
    assert r["seen"] == pytest.approx(0.0) and r["unseen"] == pytest.approx(1.0) and r["hm"] == 0.0


def test_search_keeps_the_first_best_beta_of_the_float32_grid():
    r = evaluate_distances(DIST, LABELS, SEEN, beta=None)
    assert BETA_GRID.dtype == torch.float32 and len(BETA_GRID) == 16
    assert r["beta"] == float(BETA_GRID[1])         # 0.2 (float32): the first with HM 1
    assert r["beta"] != 0.2 and r["beta"] == pytest.approx(0.2)
    assert r["hm"] == pytest.approx(1.0, abs=1e-6)


def test_ties_go_to_the_lowest_class_index():
    dist = torch.tensor([[0.3, 0.3, 0.3]])
    s = gzsl_scores(dist, torch.tensor([0]), SEEN, torch.tensor([0.0]))
    assert s["recall"][0].tolist()[0] == 1.0


def test_zsl_restricts_to_unseen_and_ignores_beta():
    dist = torch.tensor([[0.1, 0.5, 0.3, 0.4],    # label 2: among unseen {2, 3} -> 2 (right)
                         [0.2, 0.5, 0.6, 0.4],    # label 3: -> 3 (right)
                         [0.2, 0.5, 0.3, 0.1]])   # label 2: -> 3 (wrong)
    seen = torch.tensor([True, True, False, False])
    z = zsl_score(dist, torch.tensor([2, 3, 2]), seen)
    assert float(z) == pytest.approx((0.5 + 1.0) / 2)


def test_hm_is_zero_not_nan_when_both_are_zero():
    dist = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 2.0], [0.0, 1.0, 2.0]])
    r = evaluate_distances(dist, torch.tensor([0, 1, 2]), SEEN, beta=0.0)
    assert r["seen"] == 0.0 and r["unseen"] == 0.0
    assert r["hm"] == 0.0


def test_vectorised_grid_equals_one_beta_at_a_time():
    g = torch.Generator().manual_seed(0)
    dist = torch.rand(300, 12, generator=g)
    labels = torch.randint(0, 12, (300,), generator=g)
    seen = torch.arange(12) < 8
    all_at_once = gzsl_scores(dist, labels, seen, BETA_GRID, max_elements=1000)
    for i, b in enumerate(BETA_GRID):
        one = gzsl_scores(dist, labels, seen, b[None])
        assert torch.equal(one["hm"], all_at_once["hm"][i:i + 1])
        pred = (dist + b * seen.float()).argmin(1)
        rec = torch.stack([(pred[labels == c] == c).float().mean() for c in range(12)])
        assert torch.allclose(one["recall"][0], rec)


def test_combined_beta_and_line():
    res = {"audio": {"beta": float(BETA_GRID[1])}, "video": {"beta": float(BETA_GRID[2])},
           "both": {"beta": float(BETA_GRID[0])}}
    b = combined_beta(res)
    assert b == pytest.approx(0.2, abs=1e-6)
    line = format_line({"seen": 0.997, "unseen": 0.26544, "hm": 0.41921, "zsl": 0.27634})
    assert line == "Seen performance=99.70, Unseen performance=26.54, GZSL performance=41.92, ZSL performance=27.63"
