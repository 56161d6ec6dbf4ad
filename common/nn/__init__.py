"""`nn`: Module, Parameter, the standard layers and initializers, shared by both engines."""

from common.nn import init
from common.nn.layers import (
    AvgPool2d,
    Conv2d,
    Dropout,
    Embedding,
    Flatten,
    LayerNorm,
    Linear,
    MaxPool2d,
    ReLU,
    RNNCell,
    Sequential,
    Sigmoid,
    Tanh,
)
from common.nn.module import Module
from common.nn.parameter import Parameter

__all__ = [
    "AvgPool2d", "Conv2d", "Dropout", "Embedding", "Flatten", "LayerNorm", "Linear",
    "MaxPool2d", "Module", "Parameter", "RNNCell", "ReLU", "Sequential", "Sigmoid", "Tanh",
    "init",
]  # fmt: skip
