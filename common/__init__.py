"""What both engines share: backends, op declarations, dispatch, `F`, `nn`, `optim`, data."""

from common import functional  # noqa: F401  (declares every op on import)
from common.anomaly import detect_anomaly  # noqa: F401  (common.detect_anomaly())
