"""The public face: ``import alertline`` gives a host everything it needs, and the Home
Assistant integration uses nothing else."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import alertline

ROOT = Path(__file__).resolve().parents[1]


def test_every_exported_name_is_there() -> None:
    assert len(set(alertline.__all__)) == len(alertline.__all__)
    missing = [name for name in alertline.__all__ if not hasattr(alertline, name)]
    assert missing == []


def test_a_host_finds_what_it_builds_an_engine_with() -> None:
    needed = {"Engine", "create_engine", "Config", "load_config", "validate_config",
              "AlertRequest", "parse_request", "Report", "DeliveryState", "AlertState",
              "AlertlineError", "ConfigError", "ValidationError", "ProviderError", "AuthError",
              "OutboxPublisher", "ReportWaiters", "adapter_types", "adapter_class", "Redactor",
              "__version__"}
    assert needed <= set(alertline.__all__)


def test_the_error_tree_has_one_root() -> None:
    errors = [getattr(alertline, name) for name in alertline.__all__
              if isinstance(getattr(alertline, name), type)
              and issubclass(getattr(alertline, name), Exception)]
    assert errors
    assert all(issubclass(error, alertline.AlertlineError) for error in errors)


def test_the_version_is_the_distributions() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert alertline.__version__ == pyproject["project"]["version"]


def test_the_home_assistant_integration_imports_only_the_public_face() -> None:
    deep = re.compile(r"^\s*(from alertline\.|import alertline\.)", re.MULTILINE)
    offenders = [str(path.relative_to(ROOT))
                 for path in sorted((ROOT / "custom_components" / "alertline").glob("*.py"))
                 if deep.search(path.read_text())]
    assert offenders == []
