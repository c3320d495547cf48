"""Platform adapters: one interface, one HTTP implementation per platform."""

from pmsops.sync.adapters.base import AvailabilityRange, ExternalBooking, NightlyPrice, PlatformAdapter
from pmsops.sync.adapters.platforms import ADAPTERS, adapter_for

__all__ = ["ADAPTERS", "AvailabilityRange", "ExternalBooking", "NightlyPrice", "PlatformAdapter", "adapter_for"]
