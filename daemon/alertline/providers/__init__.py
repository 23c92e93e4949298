"""Provider adapters: one module per API, one contract (``base``), one registry."""

from alertline.providers.base import (
    Batch,
    BatchItem,
    Capabilities,
    Provider,
    ProviderContext,
    ProviderInfo,
    StatusMode,
    StatusUpdate,
    Submission,
    SubmittedItem,
    is_throttled,
)
from alertline.providers.registry import adapter_class, adapter_types, create_provider

__all__ = [
    "Batch",
    "BatchItem",
    "Capabilities",
    "Provider",
    "ProviderContext",
    "ProviderInfo",
    "StatusMode",
    "StatusUpdate",
    "Submission",
    "SubmittedItem",
    "adapter_class",
    "adapter_types",
    "create_provider",
    "is_throttled",
]
