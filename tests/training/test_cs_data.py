"""Cross-sell array helpers: top-n selection, threaded products and maps."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from training.cs_data import compute_threads, sparse_dense_matmul, thread_map, top_n_rows
from training.np_history import top_n_per_row


def _naive_top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.full((scores.shape[0], n), -1)
    val = np.full((scores.shape[0], n), -np.inf)
    for i, row in enumerate(scores):
        cols = [j for j in np.argsort(-row, kind="stable") if np.isfinite(row[j])][:n]
        idx[i, : len(cols)] = cols
        val[i, : len(cols)] = row[cols]
    return idx, val


def test_top_n_rows_hand_made_ties_and_padding():
    s = np.array(
        [
            [0.1, 0.5, 0.5, 0.2, 0.5],  # a three-way tie at the cut: lower columns win
            [-np.inf, 0.3, -np.inf, -np.inf, -np.inf],  # one finite entry: padded
            [1.0, 2.0, 3.0, 4.0, 5.0],
        ]
    )
    idx, val = top_n_rows(s, 2)
    assert idx.tolist() == [[1, 2], [1, -1], [4, 3]]
    assert val.tolist() == [[0.5, 0.5], [0.3, -np.inf], [5.0, 4.0]]
    idx, _ = top_n_rows(s, 7)  # more than the columns
    assert idx[2].tolist() == [4, 3, 2, 1, 0, -1, -1]


def test_nan_is_not_a_score_in_top_n_rows():
    scores = np.array([[1.0, np.nan, 3.0, 2.0, 0.5], [np.nan, np.nan, 1.0, np.nan, np.nan]])
    idx, val = top_n_rows(scores, 2)
    assert idx.tolist() == [[2, 3], [2, -1]] and val.tolist() == [[3.0, 2.0], [1.0, -np.inf]]
    wide = np.arange(400.0)[None, :].repeat(2, 0)
    wide[0, 399] = np.nan  # the sampled path
    assert top_n_rows(wide, 3)[0].tolist() == [[398, 397, 396], [399, 398, 397]]


@pytest.mark.parametrize("n", [1, 3, 10, 40, 60])
def test_top_n_rows_equals_a_full_stable_sort(n):
    rng = np.random.default_rng(n)
    # coarse values force many ties, some rows masked almost entirely
    s = rng.integers(0, 6, size=(50, 40)).astype(float)
    s[rng.random(s.shape) < 0.2] = -np.inf
    s[7, 3:] = -np.inf
    s[11] = 2.0
    got = top_n_rows(s, n)
    want = _naive_top_n(s, n)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("n", [1, 5, 30, 100])
def test_top_n_rows_of_wide_rows_equals_a_full_stable_sort(n):
    """Wide rows take the sampled bound; it must give the exact answer, ties included."""
    rng = np.random.default_rng(100 + n)
    s = np.round(rng.exponential(size=(40, 6000)), 1)  # coarse: ties at every cut
    s[rng.random(s.shape) < 0.6] = 0.0
    s[rng.random(s.shape) < 0.2] = -np.inf
    s[3] = 1.0  # one value everywhere: the lower columns win
    s[5, n // 2 :] = -np.inf  # fewer finite entries than n: padded
    s[6] = -np.inf
    s[7, ::2] = 0.0  # most of the row at the bound
    s[8, 5999] = 99.0  # the best entry off the sample's columns
    got = top_n_rows(s, n)
    want = _naive_top_n(s, n)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_top_n_per_row_is_top_n_rows_without_padding():
    s = np.array([[0.0, 2.0, 1.0], [3.0, 3.0, 0.0]])
    idx, val = top_n_per_row(s, 5)
    assert idx.tolist() == [[1, 2, 0], [0, 1, 2]]
    assert val.tolist() == [[2.0, 1.0, 0.0], [3.0, 3.0, 0.0]]
    assert top_n_per_row(s, 0)[0].shape == (2, 0)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_sparse_dense_matmul_is_identical_whatever_the_threads(threads):
    rng = np.random.default_rng(0)
    a = sp.random(101, 37, density=0.2, format="csr", random_state=1)
    b = rng.normal(size=(37, 9))
    got = sparse_dense_matmul(a, b, threads=threads, block_rows=16)
    np.testing.assert_array_equal(got, np.asarray(a @ b))
    assert got.shape == (101, 9)


def test_thread_map_keeps_order_and_compute_threads_reads_the_environment(monkeypatch):
    assert thread_map(lambda x: x * x, list(range(20)), threads=3) == [x * x for x in range(20)]
    assert thread_map(lambda x: x, [], threads=2) == []
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert compute_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert compute_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "many")  # not a count: every usable core
    assert compute_threads() >= 1
