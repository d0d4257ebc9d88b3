"""FNAS (Liu et al. 2021): RL architecture search made cheap by an uncertainty-aware critic,
a block-level knowledge pool and a small prioritized experience buffer.

Importing this package registers the ``fnas`` searcher.
"""

from .controller import Controller
from .critic import CriticConfig, UncertaintyAwareCritic, cap_trusted
from .encoding import ArchEncoder
from .experience_buffer import ExperienceBuffer
from .ppo import PPO, PPOConfig, ppo_loss
from .searcher import VARIANTS, FNASConfig, FNASSearcher

__all__ = ["ArchEncoder", "Controller", "CriticConfig", "ExperienceBuffer", "FNASConfig", "FNASSearcher", "PPO",
           "PPOConfig", "UncertaintyAwareCritic", "VARIANTS", "cap_trusted", "ppo_loss"]
