"""The sampler a user gets by default is the one the README's ranking benchmark section names,
in the library (TrainConfig, which `hwnas run` uses) and in `hwnas train`."""

import inspect
import re

from hwnas.train.trainer import TrainConfig

from .conftest import REPO


def test_the_default_sampler_is_the_one_the_readme_names():
    readme = (REPO / "README.md").read_text()
    named = re.search(r"\*\*The default sampler is (\S+?)\.\*\*", readme)
    assert named, "the README's 'Supernet ranking' section names the default sampler"
    assert TrainConfig().sampler == named.group(1)
    from hwnas.commands import train as train_cmd

    src = inspect.getsource(train_cmd)
    assert re.search(r'sampler: str = typer\.Option\("' + re.escape(named.group(1)) + '", "--sampler"', src)
