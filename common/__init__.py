"""What both engines share: backends, op declarations, dispatch, `F`, `nn`, `optim`, data."""

from common import functional  # noqa: F401  (declares every op on import)
