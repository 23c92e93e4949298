"""providers/registry.py: every adapter is imported with the registry, never on first lookup.

Home Assistant imports an integration's modules off the event loop, then calls into them on the
loop; a lazy ``import_module`` at the first lookup is a blocking call there. A fresh interpreter
shows what importing the registry alone brings in.
"""

from __future__ import annotations

import subprocess
import sys

from alertline.providers.registry import adapter_class, adapter_types

_PROBE = """
import sys
import alertline.providers.registry as registry
missing = [t for t in registry.adapter_types()
           if registry.adapter_class(t).__module__ not in sys.modules
           or not registry.adapter_class(t).__module__.startswith("alertline.providers.")]
print(missing)
"""


def test_importing_the_registry_imports_every_adapter() -> None:
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                            check=True, timeout=60)
    assert result.stdout.strip() == "[]"


def test_every_type_maps_to_its_own_adapter() -> None:
    assert adapter_types() == sorted(adapter_types())
    for adapter_type in adapter_types():
        assert adapter_class(adapter_type).type == adapter_type
