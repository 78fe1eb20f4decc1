"""Deep-feature distances: backbones and taps, perceptual/style distances, random networks (S-CNN), PE.

Modules: :mod:`.backbones` (torchvision backbones, layer names, trained or random weights),
:mod:`.perceptual` (per-layer distances, layer and channel weights, Gram style term), :mod:`.scnn`
(Amir & Weiss' Simple-CNN), :mod:`.pe` (Tariq et al.'s Perceptual Efficacy), :mod:`.definitions`
(named metric definitions for `lpips compare`). Importing this package does not import torch.
"""

