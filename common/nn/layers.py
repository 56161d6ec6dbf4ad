"""The standard layers and losses, each a few lines over `F` (so they run eagerly or build
graphs)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from common import functional as F
from common.nn import init
from common.nn.module import Module
from common.nn.parameter import Parameter


class Linear(Module):
    """y = x @ weight.T + bias, weight of shape (out_features, in_features) as in torch."""

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, generator: Any = None
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(init.kaiming_uniform((out_features, in_features), generator))
        bound = 1.0 / math.sqrt(in_features)
        self.bias = Parameter(init.uniform((out_features,), bound, generator)) if bias else None

    def forward(self, x: Any) -> Any:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-d convolution over NCHW inputs with an (out, in, kh, kw) weight."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        bias: bool = True,
        generator: Any = None,
    ) -> None:
        super().__init__()
        kh, kw = (kernel_size, kernel_size) if np.ndim(kernel_size) == 0 else kernel_size
        shape = (out_channels, in_channels, kh, kw)
        self.stride, self.padding = stride, padding
        self.weight = Parameter(init.kaiming_uniform(shape, generator))
        bound = 1.0 / math.sqrt(init.fan_in(shape))
        self.bias = Parameter(init.uniform((out_channels,), bound, generator)) if bias else None

    def forward(self, x: Any) -> Any:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        o, i, kh, kw = self.weight.shape
        return f"{i}, {o}, kernel_size=({kh}, {kw}), stride={self.stride}, padding={self.padding}"


class MaxPool2d(Module):
    def __init__(self, kernel_size: Any, stride: Any = None) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x: Any) -> Any:
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}"


class AvgPool2d(MaxPool2d):
    def forward(self, x: Any) -> Any:
        return F.avg_pool2d(x, self.kernel_size, self.stride)


class Flatten(Module):
    """Merge the axes from start_dim to end_dim into one (by default all after the batch)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Any) -> Any:
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class ReLU(Module):
    def forward(self, x: Any) -> Any:
        return F.relu(x)


class Tanh(Module):
    def forward(self, x: Any) -> Any:
        return F.tanh(x)


class Sigmoid(Module):
    def forward(self, x: Any) -> Any:
        return F.sigmoid(x)


class GELU(Module):
    """x * Phi(x); `approximate="tanh"` for the tanh approximation (as torch)."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, x: Any) -> Any:
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Sequential(Module):
    """Layers applied in order; `model[0]` is the first."""

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            setattr(self, str(i), layer)

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def forward(self, x: Any) -> Any:
        for layer in self._modules.values():
            x = layer(x)
        return x


class RNNCell(Module):
    """Elman cell: h' = tanh(x @ W_ih.T + b_ih + h @ W_hh.T + b_hh)."""

    def __init__(self, input_size: int, hidden_size: int, generator: Any = None) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        bound = 1.0 / math.sqrt(hidden_size)
        self.weight_ih = Parameter(init.uniform((hidden_size, input_size), bound, generator))
        self.weight_hh = Parameter(init.uniform((hidden_size, hidden_size), bound, generator))
        self.bias_ih = Parameter(init.uniform((hidden_size,), bound, generator))
        self.bias_hh = Parameter(init.uniform((hidden_size,), bound, generator))

    def forward(self, x: Any, h: Any) -> Any:
        return F.tanh(
            F.linear(x, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh, self.bias_hh)
        )

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class LayerNorm(Module):
    def __init__(self, normalized_shape: Any, eps: float = 1e-5) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        self.normalized_shape, self.eps = tuple(shape), eps
        self.weight = Parameter(np.ones(self.normalized_shape, np.float32))
        self.bias = Parameter(np.zeros(self.normalized_shape, np.float32))

    def forward(self, x: Any) -> Any:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


class Embedding(Module):
    def __init__(self, num_embeddings: int, embedding_dim: int, generator: Any = None) -> None:
        super().__init__()
        self.weight = Parameter(init.normal((num_embeddings, embedding_dim), 1.0, generator))

    def forward(self, indices: Any) -> Any:
        return F.embedding(indices, self.weight)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, {self.weight.shape[1]}"


class Dropout(Module):
    """Zeroes elements with probability p while training; the identity in eval()."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Any) -> Any:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# ---- losses: `loss_fn(input, target)`, reduced as `reduction` says ------------------------


class _Loss(Module):
    """A loss function as a module: `function(input, target, reduction=...)`."""

    function: Any = None  # one of F's losses

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, input: Any, target: Any) -> Any:  # noqa: A002 (torch's name)
        return self.function(input, target, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    function = staticmethod(F.mse_loss)


class CrossEntropyLoss(_Loss):
    """On logits and integer class labels."""

    function = staticmethod(F.cross_entropy)


class NLLLoss(_Loss):
    """On log-probabilities (a log_softmax) and integer class labels."""

    function = staticmethod(F.nll_loss)


class BCELoss(_Loss):
    """On probabilities (a sigmoid's output) and targets in [0, 1]."""

    function = staticmethod(F.binary_cross_entropy)
