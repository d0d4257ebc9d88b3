"""Training data through torch.utils.data: the deterministic batch sampler, DataLoader workers,
and int8 calibration images preprocessed exactly as training images."""

import numpy as np
import pytest
import torch
from PIL import Image

from hwnas.export.calibration import folder_images
from hwnas.train.data import FolderImageSet, make_builtin
from hwnas.train.loader import EpochBatchSampler, batch_loader
from hwnas.train.trainer import TrainConfig, train_supernet


def _image_tree(root, n_per_class=6):
    """Two classes of photos-like images of assorted sizes and file types."""
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(n_per_class):
            h, w = int(rng.integers(30, 90)), int(rng.integers(30, 90))
            a = (rng.random((h, w, 3)) * 255).astype(np.uint8)
            ext = (".jpg", ".png", ".JPEG")[i % 3]
            Image.fromarray(a).save(root / c / f"{i}{ext}", format="PNG" if ext == ".png" else "JPEG")
    return root


def test_int8_calibration_images_equal_the_training_preprocessing(tmp_path):
    root = _image_tree(tmp_path / "imgs")
    train = FolderImageSet(root, resolution=40)
    calib = folder_images(root, resolution=40, n=100)
    assert calib.shape == (12, 3, 40, 40) and calib.dtype == np.float32
    by_file = {str(p): i for i, p in enumerate(train.files)}
    files = sorted(str(p) for p in train.files)
    assert len(files) == len(calib)
    for j, f in enumerate(files):
        x, _ = train[by_file[f]]
        assert np.array_equal(x.numpy(), calib[j]), f


def test_a_sampler_started_mid_run_continues_the_full_sequence():
    def seeded(epoch):
        return 1000 + epoch

    full = list(EpochBatchSampler(50, 8, seeded, start=0, stop=20))
    assert len(full) == 20 and all(len(b) == 8 for b in full)
    assert sorted(sum(full[:6], [])) == sorted(set(sum(full[:6], [])))  # one epoch: no image twice
    assert list(EpochBatchSampler(50, 8, seeded, start=13, stop=20)) == full[13:]
    halves = [list(EpochBatchSampler(50, 8, seeded, start=0, stop=20, rows=slice(r * 4, (r + 1) * 4))) for r in (0, 1)]
    assert [a + b for a, b in zip(*halves)] == full  # two ranks' rows make up the global batch


def test_worker_processes_do_not_change_a_batch(tmp_path):
    data = FolderImageSet(_image_tree(tmp_path / "imgs"), resolution=24)
    sampler = EpochBatchSampler(len(data), 4, lambda e: e, start=0, stop=5)
    inline = list(batch_loader(data, sampler, workers=0))
    parallel = list(batch_loader(data, sampler, workers=2))
    assert len(inline) == len(parallel) == 5
    for (x0, y0), (x2, y2) in zip(inline, parallel):
        assert torch.equal(x0, x2) and torch.equal(y0, y2)
    x, y = inline[0]
    assert x.shape == (4, 3, 24, 24) and torch.equal(x, data.batch(sampler.batch_indices(0))[0])


@pytest.mark.parametrize("workers", [2])
def test_training_with_workers_matches_training_without(workers, one_torch_thread):
    cfg = dict(space="tiny", n_train=64, n_val=32, n_path_eval=16, batch_size=16, eval_batch=16, sampler="uniform",
               max_iters=6)
    _, a = train_supernet(TrainConfig(**cfg, data_workers=0))
    trainer, b = train_supernet(TrainConfig(**cfg, data_workers=workers))
    assert trainer.workers == workers
    assert a["final_loss"] == b["final_loss"] and a["final_acc"] == b["final_acc"]


def test_in_memory_sets_load_without_workers_and_folders_with_two(tmp_path):
    from hwnas.train.data import build_datasets
    from hwnas.train.trainer import default_workers

    assert default_workers(make_builtin(20, 0)) == 0
    folder = build_datasets(f"folder:{_image_tree(tmp_path / 'imgs')}", resolution=24, n_path_eval=1)
    assert default_workers(folder.train) == 2  # a Subset of the folder set
