"""`Module`: a tree of layers that owns parameters (torch.nn.Module's contract).

Assigning a `Parameter` or a `Module` to an attribute registers it; `parameters()`,
`state_dict()`, `train()`/`eval()` and `to(device)` then walk the tree.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import numpy as np

from common.dispatch import engine_scope, owner_engine
from common.nn.parameter import Parameter
from common.ops.core import fmt

_calls: ContextVar[list | None] = ContextVar("module_calls", default=None)


@contextlib.contextmanager
def recording_calls() -> Iterator[list]:
    """Collect every module called inside (in this thread): a graph traced through them
    depends on their train/eval modes, so `S.function` watches the modes of these."""
    calls: list = []
    token = _calls.set(calls)
    try:
        yield calls
    finally:
        _calls.reset(token)


class Module:
    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(
                f"{type(self).__name__}: assign {name!r} after calling "
                "super().__init__() in __init__."
            )
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            value.name = value.name or name
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        calls = _calls.get()
        if calls is not None:
            calls.append(self)
        engine = owner_engine(args)
        if engine is not None and engine._priority > Parameter._priority + 1:
            with engine_scope(engine):  # symbols in: the weights become variables too
                return self.forward(*args, **kwargs)
        return self.forward(*args, **kwargs)

    # ---- walking the tree ------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def children(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        seen = set()
        for path, module in self.named_modules():
            for name, param in module._parameters.items():
                if id(param) not in seen:  # a shared weight is listed once
                    seen.add(id(param))
                    yield (f"{path}.{name}" if path else name), param

    def parameters(self) -> Iterator[Parameter]:
        return (p for _, p in self.named_parameters())

    # ---- state -----------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict:
        """Name -> a host copy of every parameter's value (plain numpy: safe to save)."""
        return OrderedDict((name, p.numpy().copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy values into the parameters; checks everything first, so a bad dict changes
        nothing."""
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if strict and (missing or unexpected):
            raise KeyError(
                f"load_state_dict: missing keys {missing}, unexpected keys "
                f"{unexpected}. Fix: load a state dict saved from the same model, "
                "or pass strict=False."
            )
        for name in set(params) & set(state):
            if tuple(np.shape(state[name])) != params[name].shape:
                raise ValueError(
                    f"load_state_dict: {name} has shape "
                    f"{fmt(tuple(np.shape(state[name])))} in the dict but "
                    f"{fmt(params[name].shape)} in the model. Fix: build the model "
                    "with the sizes it was saved with."
                )
        for name in set(params) & set(state):
            params[name].copy_(np.asarray(state[name]))

    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def to(self, device: str) -> Module:
        for p in self.parameters():
            p.to(device)
        return self

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}" + (")" if not self._modules else "")]
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        if self._modules:
            lines.append(")")
        return "\n".join(lines)
