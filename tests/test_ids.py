import pytest
import torch

from dreamomni2.ids import ID_POLICIES, grid_ids, reference_ids, reference_offsets, target_ids

SIZES = [(2, 3), (1, 2), (3, 1), (2, 2), (1, 1)]  # packed (h, w) of up to 5 images of mixed sizes


def expected(sizes, idx, rows, cols):
    parts = []
    for (h, w), i, r0, c0 in zip(sizes, idx, rows, cols, strict=True):
        for r in range(h):
            for c in range(w):
                parts.append([i, r + r0, c + c0])
    return torch.tensor(parts, dtype=torch.float32)


def test_grid_ids_exact():
    assert grid_ids(2, 3).tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 1, 0], [0, 1, 1], [0, 1, 2]]
    assert grid_ids(1, 2, index=4, row_offset=5, col_offset=7).tolist() == [[4, 5, 7], [4, 5, 8]]
    assert torch.equal(target_ids(2, 3), grid_ids(2, 3))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_dreamomni2_policy_index_and_cumulative_columns(n):
    sizes = SIZES[:n]
    cols = [sum(w for _, w in sizes[:i]) for i in range(n)]  # 0, 3, 5, 6, 8
    want = expected(sizes, [i + 1 for i in range(n)], [0] * n, cols)
    assert torch.equal(reference_ids(sizes, "dreamomni2"), want)


def test_dreamomni2_policy_literal_values():
    ids = reference_ids([(1, 2), (2, 1)], "dreamomni2")
    assert ids.tolist() == [[1, 0, 0], [1, 0, 1], [2, 0, 2], [2, 1, 2]]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_kontext_index_shift_policies(n):
    sizes = SIZES[:n]
    cols = [sum(w for _, w in sizes[:i]) for i in range(n)]
    assert torch.equal(reference_ids(sizes, "kontext"), expected(sizes, [1] * n, [0] * n, [0] * n))
    assert torch.equal(reference_ids(sizes, "index"), expected(sizes, list(range(1, n + 1)), [0] * n, [0] * n))
    assert torch.equal(reference_ids(sizes, "shift"), expected(sizes, [1] * n, [0] * n, cols))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_diagonal_policy_starts_at_target_corner(n):
    sizes, target = SIZES[:n], (4, 5)
    rows = [4 + sum(h for h, _ in sizes[:i]) for i in range(n)]
    cols = [5 + sum(w for _, w in sizes[:i]) for i in range(n)]
    assert torch.equal(reference_ids(sizes, "diagonal", target=target), expected(sizes, [0] * n, rows, cols))
    assert reference_offsets([(2, 3), (1, 2)], "diagonal", target=(4, 5)) == [(0, 4, 5), (0, 6, 8)]


def test_policy_errors():
    with pytest.raises(ValueError, match="Unsupported id policy 'uno'.*dreamomni2, kontext, index, shift, diagonal"):
        reference_ids([(1, 1)], "uno")
    with pytest.raises(ValueError, match="needs the target"):
        reference_ids([(1, 1)], "diagonal")
    with pytest.raises(ValueError, match="Reference 2 has an empty packed size"):
        reference_ids([(1, 1), (0, 3)])
    assert set(ID_POLICIES) == {"dreamomni2", "kontext", "index", "shift", "diagonal"}
    assert reference_ids([], "dreamomni2").shape == (0, 3)
