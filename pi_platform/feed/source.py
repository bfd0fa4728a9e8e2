"""Where the configured `stream_values` table is: the lake root and storage options from `settings`."""

from pi_platform import settings
from pi_platform.storage import DeltaStore
from pi_platform.storage.tables import STREAM_VALUES


def stream_values_location(delta_root: str | None = None) -> tuple[str, dict[str, str]]:
    """(table URI, delta-rs storage options) of `stream_values` under `delta_root` (default PI_DELTA_ROOT)."""
    store = DeltaStore(delta_root or settings.delta_root(), settings.storage_options())
    return store.uri(STREAM_VALUES.name), dict(store.storage_options)
