"""train.rehydrate: documents drawn in proportion to FineWeb-2's weight for their duplicate-cluster size."""

import numpy as np
import pytest

from training.config import TrainConfig
from training.data import FINEWEB2_REHYDRATION, MixtureWindows, rehydration_weights


def test_fineweb2_weights_by_cluster_size():
    sizes = np.array([0, 1, 2, 3, 4, 5, 99, 100, 999, 1000, 50_000])
    assert rehydration_weights(sizes, FINEWEB2_REHYDRATION).tolist() == [1, 1, 2, 3, 3, 5, 5, 8, 8, 1, 1]
    assert rehydration_weights(sizes, [[1, 1], [10, 4]]).tolist() == [1] * 6 + [4] * 5
    assert TrainConfig().rehydration == FINEWEB2_REHYDRATION


@pytest.mark.parametrize("table", [[[2, 1]], [[1, 1], [5, 0]], [[1, 1], [5, 2], [3, 2]], [[1]]])
def test_a_bad_table_is_refused(table):
    with pytest.raises(ValueError, match="rehydration"):
        TrainConfig(rehydration=table)


def test_windows_are_drawn_by_weighted_tokens(tmp_path):
    # three documents of 400 tokens, their tokens 1, 2 and 3; cluster sizes 1, 4 (weight 3) and 100 (weight 8)
    path = tmp_path / "train.bin"
    np.concatenate([np.full(400, v, np.uint16) for v in (1, 2, 3)]).tofile(path)
    ranges = {"*": np.array([[0, 400], [400, 800], [800, 1200]])}
    weights = {"*": rehydration_weights(np.array([1, 4, 100]), FINEWEB2_REHYDRATION)}
    windows = MixtureWindows(path, "uint16", 8, seed=3, ranges=ranges, weights={"*": 1.0}, document_weights=weights)
    first = np.array([int(windows[i][0][0]) for i in range(6000)])
    shares = np.bincount(first, minlength=4)[1:] / len(first)
    assert np.allclose(shares, [1 / 12, 3 / 12, 8 / 12], atol=0.02)
    plain = MixtureWindows(path, "uint16", 8, seed=3, ranges=ranges, weights={"*": 1.0})
    plain_first = np.bincount([int(plain[i][0][0]) for i in range(3000)], minlength=4)[1:] / 3000
    assert np.allclose(plain_first, [1 / 3] * 3, atol=0.03)
    assert all(len(windows[i][0]) == 8 for i in range(200))  # a window never runs past the end


def test_the_data_module_weights_every_document_from_the_tokenizers_cluster_sizes(tokens, tmp_path):
    import shutil

    from tokenmill.errors import UserError
    from training.data import TokenDataModule

    copy = shutil.copytree(tokens, tmp_path / "tokens")
    sizes = np.load(copy / "train.cluster_size.npy")
    assert sizes.dtype == np.int32 and (sizes == 1).all()  # the test corpus was not deduplicated
    sizes[0] = 120
    np.save(copy / "train.cluster_size.npy", sizes)
    data = TokenDataModule(copy, 16, 2, 1, 1, 1, rehydration=FINEWEB2_REHYDRATION)
    dataset = data.train_dataset()
    assert isinstance(dataset, MixtureWindows) and dataset.document_weights[0].tolist() == [8] + [1] * (len(sizes) - 1)
    (copy / "train.cluster_size.npy").unlink()
    with pytest.raises(UserError, match="cluster sizes"):
        TokenDataModule(copy, 16, 2, 1, 1, 1, rehydration=FINEWEB2_REHYDRATION)
