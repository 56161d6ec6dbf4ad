"""A compiled function as a file, and back: the graph runs without the Python that built it.

    step.save("step.dip")                 # the traced graph, its pass options, its weights
    again = S.load("step.dip")            # compiled again; its variables are new storages
    S.save(S.trace(model, x), "model.dip")   # an eager model, traced, straight to a file

The format (docs/concepts/serialization.md): one safetensors file whose metadata holds the
graph as JSON, with ops named as the registry names them; loading runs no code from it.
"""

from symbolic.serialize.format import FORMAT, VERSION, LoadError, SaveError
from symbolic.serialize.load import load
from symbolic.serialize.save import save

__all__ = ["FORMAT", "VERSION", "LoadError", "SaveError", "load", "save"]
