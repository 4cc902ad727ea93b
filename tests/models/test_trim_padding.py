"""The exportable forms in the model families give the values of the forms they replaced:
`trim_padding` (in-graph) against slicing at `int(lengths.max())`, and the hf_encoder's mean
pooling on the padded grid against `index_add` over packed rows, and the audio CNN's adaptive
pooling traced as matrix products against the eager kernel."""

from __future__ import annotations

import pytest
import torch

from modelforge.models.layers import AdaptiveAvgPool2d, trim_padding
from modelforge.models.pretrained import Packing


def right_padded(rows: int, length: int, lengths: list[int], seed: int = 0) -> torch.Tensor:
    tokens = torch.randint(1, 50, (rows, length), generator=torch.Generator().manual_seed(seed))
    return tokens.masked_fill(torch.arange(length)[None, :] >= torch.tensor(lengths)[:, None], 0)


@pytest.mark.parametrize("lengths", [[3, 1, 5], [8, 8, 8], [0, 0, 0], [0, 2, 0], [1, 1, 1]])
def test_trim_padding_equals_slicing_at_the_longest_row(lengths: list[int]) -> None:
    tokens = right_padded(len(lengths), 8, lengths)
    old = tokens[:, : max(int((tokens != 0).sum(1).max()), 1)]
    assert torch.equal(trim_padding(tokens), old)


def test_mean_pooling_on_the_grid_equals_index_add_over_packed_rows() -> None:
    keep = right_padded(5, 7, [3, 7, 1, 0, 5]) != 0
    packing = Packing.of(keep)
    hidden = torch.randn(len(packing.index), 16, generator=torch.Generator().manual_seed(1))
    old = hidden.new_zeros(keep.shape[0], 16).index_add(0, packing.rows, hidden)
    torch.testing.assert_close(packing.pad(hidden).sum(1), old, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("size", "out"), [((16, 59), (2, 4)), ((8, 14), (2, 4)), ((5, 7), (3, 3)), ((4, 8), (2, 4))])
def test_traced_adaptive_pooling_averages_the_bins_of_the_eager_kernel(size: tuple, out: tuple) -> None:
    pool = AdaptiveAvgPool2d(out)
    x = torch.randn(3, 2, *size, generator=torch.Generator().manual_seed(0))
    traced = torch.jit.trace(pool, x[:1], check_trace=False)
    torch.testing.assert_close(traced(x), torch.nn.functional.adaptive_avg_pool2d(x, out), rtol=0, atol=1e-6)
    assert torch.equal(pool(x), torch.nn.functional.adaptive_avg_pool2d(x, out))
