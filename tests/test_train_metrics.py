"""Training curves on disk: metrics.csv always, TensorBoard events when the extra is installed."""

import sys

import pytest

from hwnas.train.checkpoint import read_checkpoint
from hwnas.train.metrics import read_metrics_csv
from hwnas.train.trainer import train_supernet

from .test_train import _config, one_thread


def test_metrics_csv_holds_every_iteration_of_the_checkpoint(tmp_path):
    with one_thread():
        train_supernet(_config(6, ckpt_every=3), tmp_path / "run")
    text = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert text[0] == "iteration,loss,accuracy,epsilon,pool_size,pi,lr"
    m = read_metrics_csv(tmp_path / "run" / "metrics.csv")
    meta, _ = read_checkpoint(tmp_path / "run" / "supernet.json")
    assert m["iteration"] == [1, 2, 3, 4, 5, 6]
    assert m["loss"] == [h[1] for h in meta["history"]]  # the values the checkpoint holds, not rounded
    assert m["accuracy"] == [h[2] for h in meta["history"]]
    assert m["epsilon"] == [h[3] for h in meta["history"]] and m["pool_size"] == [h[4] for h in meta["history"]]
    lrs = m["lr"]
    assert lrs[0] < 0.12 and all(a > b for a, b in zip(lrs, lrs[1:]))  # cosine decay from --lr 0.12, to 0 at the end
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_a_resumed_run_writes_the_same_csv_and_no_event_twice(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with one_thread():
        train_supernet(_config(6, ckpt_every=3), tmp_path / "ref")
        out = tmp_path / "cut"
        train_supernet(_config(6, ckpt_every=3), out)
        for p in out.glob("supernet.*"):  # as if killed after iteration 6 was logged but before the final save
            p.unlink()
        train_supernet(_config(6, ckpt_every=3), out)  # continues from the checkpoint of iteration 3
    assert (out / "metrics.csv").read_text() == (tmp_path / "ref" / "metrics.csv").read_text()
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    assert {"train/loss", "train/accuracy", "train/lr", "train/epsilon", "train/pool_size"} <= set(acc.Tags()["scalars"])
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [1, 2, 3, 4, 5, 6]  # iterations 4-6 of the first attempt were purged
    ref = read_metrics_csv(tmp_path / "ref" / "metrics.csv")["loss"]
    assert [e.value for e in loss] == pytest.approx(ref, rel=1e-6)  # float32 in the event file


def test_without_tensorboard_only_the_csv_is_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # `import` of it raises ImportError
    with one_thread():
        train_supernet(_config(3), tmp_path / "run")
    assert read_metrics_csv(tmp_path / "run" / "metrics.csv")["iteration"] == [1, 2, 3]
    assert not (tmp_path / "run" / "tensorboard").exists()
