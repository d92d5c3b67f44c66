"""Every model of the course, one module per family:

    two_layer_net   TwoLayerNet
    fc_net          FullyConnectedNet
    cnn             ThreeLayerConvNet, ConvNet
    rnn             CaptioningRNN
    gan             GeneratorFC, DiscriminatorFC, GeneratorDC, DiscriminatorDC and the GAN losses

All models keep their arrays in `model.params` and can `save(path)` / `load(path)` them.
"""
from .base import Model
from .cnn import ConvNet, ThreeLayerConvNet
from .fc_net import FullyConnectedNet
from .gan import (DiscriminatorDC, DiscriminatorFC, GeneratorDC, GeneratorFC, bce_with_logits,
                  discriminator_loss, generator_loss, ls_discriminator_loss, ls_generator_loss)
from .rnn import CaptioningRNN
from .two_layer_net import TwoLayerNet

__all__ = [
    "Model",
    "TwoLayerNet",
    "FullyConnectedNet",
    "ThreeLayerConvNet",
    "ConvNet",
    "CaptioningRNN",
    "GeneratorFC",
    "DiscriminatorFC",
    "GeneratorDC",
    "DiscriminatorDC",
    "bce_with_logits",
    "discriminator_loss",
    "generator_loss",
    "ls_discriminator_loss",
    "ls_generator_loss",
]
