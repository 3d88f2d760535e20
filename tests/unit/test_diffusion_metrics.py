"""Hand-computed checks of the diffusion metrics (obliviate.diffusion.metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from obliviate.diffusion import metrics as M


def test_unlearning_accuracy_counts_images_not_assigned_to_the_target():
    assert M.unlearning_accuracy([0, 1, 2, 0], target=0) == 0.5
    assert M.unlearning_accuracy([1, 2], target=0) == 1.0
    assert M.unlearning_accuracy(np.array([3]), target=3) == 0.0


def test_unlearning_accuracy_rejects_empty_and_non_1d():
    with pytest.raises(ValueError, match="empty"):
        M.unlearning_accuracy([], target=0)
    with pytest.raises(ValueError, match="one-dimensional"):
        M.unlearning_accuracy([[0, 1]], target=0)


def test_retain_accuracy():
    assert M.retain_accuracy([0, 1, 1], [0, 1, 2]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="2 predictions but 3 labels"):
        M.retain_accuracy([0, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="empty"):
        M.retain_accuracy([], [])


def test_frechet_distance_one_dimensional_hand_value():
    # (0 − 1)² + 1 + 4 − 2·sqrt(1·4) = 2
    assert M.frechet_distance(
        np.array([0.0]), np.array([[1.0]]), np.array([1.0]), np.array([[4.0]])
    ) == pytest.approx(2.0)


def test_frechet_distance_diagonal_hand_value():
    # ‖(1, 1)‖² = 2; traces 5 + 13 − 2·(2 + 6) = 2 -> 4
    d = M.frechet_distance(np.zeros(2), np.diag([1.0, 4.0]), np.ones(2), np.diag([4.0, 9.0]))
    assert d == pytest.approx(4.0)
    assert M.frechet_distance(np.ones(2), np.eye(2), np.ones(2), np.eye(2)) == pytest.approx(
        0.0, abs=1e-9
    )


def test_frechet_distance_shape_mismatch():
    with pytest.raises(ValueError, match="shape mismatch"):
        M.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_fid_from_features_same_set_and_shifted_set():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(50, 4))
    assert M.fid_from_features(f, f) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, 2.0, 0.0, 0.0])
    assert M.fid_from_features(f, f + shift) == pytest.approx(5.0, abs=1e-6)  # ‖shift‖²


def test_fid_from_features_rejects_too_few_samples():
    with pytest.raises(ValueError, match="N >= 2"):
        M.fid_from_features(np.zeros((1, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="N >= 2"):
        M.fid_from_features(np.zeros(3), np.zeros((4, 3)))


def test_kid_hand_value():
    x = np.array([[1.0], [0.0]])
    y = np.array([[0.0], [2.0]])
    # d = 1, k(a, b) = (ab + 1)³. kxx off-diagonal: k(1, 0) = 1 (twice) / (2·1) = 1;
    # kyy: k(0, 2) = 1 -> 1; kxy: k(1,0)=1, k(1,2)=27, k(0,0)=1, k(0,2)=1 -> mean 7.5
    assert M.kid_from_features(x, y) == pytest.approx(1 + 1 - 2 * 7.5)


def test_kid_rejects_bad_shapes():
    with pytest.raises(ValueError, match="dimensions differ"):
        M.kid_from_features(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="N >= 2"):
        M.kid_from_features(np.zeros((1, 2)), np.zeros((3, 2)))


def test_kid_is_near_zero_for_samples_of_one_distribution_and_large_for_shifted():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(400, 3)), rng.normal(size=(400, 3))
    same, shifted = M.kid_from_features(a, b), M.kid_from_features(a, b + 0.5)
    assert abs(same) < 0.15  # sampling noise of the unbiased estimator
    assert shifted > 1.0 and shifted > 10 * abs(same)
