"""`nn`: Module, Parameter, the standard layers, losses and initializers, shared by both
engines."""

from common.nn import init
from common.nn.layers import (
    GELU,
    AvgPool2d,
    BCELoss,
    Conv2d,
    CrossEntropyLoss,
    Dropout,
    Embedding,
    Flatten,
    LayerNorm,
    Linear,
    MaxPool2d,
    MSELoss,
    NLLLoss,
    ReLU,
    RNNCell,
    Sequential,
    Sigmoid,
    Tanh,
)
from common.nn.module import Module
from common.nn.parameter import Parameter

__all__ = [
    "AvgPool2d", "BCELoss", "Conv2d", "CrossEntropyLoss", "Dropout", "Embedding", "Flatten",
    "GELU", "LayerNorm", "Linear", "MSELoss", "MaxPool2d", "Module", "NLLLoss", "Parameter",
    "RNNCell", "ReLU", "Sequential", "Sigmoid", "Tanh", "init",
]  # fmt: skip
