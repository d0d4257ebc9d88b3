"""PyTorch side: candidate op modules, the standalone network and the single-path supernet."""

from .modules import build_block
from .network import Network, build_network
from .supernet import SuperNet
from .expanded import ExpandedSuperNet, build_supernet

__all__ = ["build_block", "Network", "build_network", "SuperNet", "ExpandedSuperNet", "build_supernet"]
