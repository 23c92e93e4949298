"""Provider adapters: one module per API, one contract (``base``), one registry."""

from .base import (
    Batch,
    BatchItem,
    Capabilities,
    Provider,
    ProviderContext,
    ProviderInfo,
    StatusMode,
    StatusUpdate,
    SubmittedItem,
    Submission,
)
from .registry import adapter_class, adapter_types, create_provider

__all__ = [
    "Batch",
    "BatchItem",
    "Capabilities",
    "Provider",
    "ProviderContext",
    "ProviderInfo",
    "StatusMode",
    "StatusUpdate",
    "SubmittedItem",
    "Submission",
    "adapter_class",
    "adapter_types",
    "create_provider",
]
