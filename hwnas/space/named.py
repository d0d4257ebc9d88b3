"""Published architectures as ready archs (``hwnas export --arch proxyless-mobile``)."""

from __future__ import annotations

from ..registry import Registry
from .arch import Arch
from .registry import create_space

NAMED_ARCHS: Registry[Arch] = Registry("named arch")


@NAMED_ARCHS.register("proxyless-mobile")
def proxyless_mobile() -> Arch:
    """ProxylessNAS-Mobile (Cai et al., ICLR 2019), read off its released network config.

    The same layer sequence is in the TFLite benchmark_model log shipped as a test fixture.
    """
    return create_space("proxyless").arch([
        "k5e3", "k3e3", "id", "id",
        "k7e3", "k3e3", "k5e3", "k5e3",
        "k7e6", "k5e3", "k5e3", "k5e3",
        "k5e6", "k5e3", "k5e3", "k5e3",
        "k7e6", "k7e6", "k7e3", "k7e3",
        "k7e6",
    ])


@NAMED_ARCHS.register("nas-bench-macro-best")
def nas_bench_macro_best() -> Arch:
    """The best arch of NAS-Bench-Macro by mean test accuracy (93.13%)."""
    return create_space("nas-bench-macro").from_compact("22212220")
