"""What hosts read about adapter types: options for forms and listings, channels, push status,
and the one-off credential check of a config flow."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from alertline import (
    AuthError,
    Redactor,
    adapter_channels,
    adapter_class,
    adapter_options,
    check_provider,
    default_channel,
    pushes_status,
)
from alertline.providers.base import ProviderInfo
from alertline.providers.simulator import SimulatorProvider


def test_options_as_the_adapter_declares_them() -> None:
    options = {o.name: o for o in adapter_options(adapter_class("retarus_sms"))}
    assert options["username"].required and not options["username"].secret
    assert options["password"].required and options["password"].secret
    assert not options["base_url"].required
    assert options["base_url"].default.startswith("https://")
    assert options["password"].description


def test_channels_and_the_default_channel() -> None:
    assert adapter_channels(adapter_class("simulator")) == ["sms", "voice"]
    assert default_channel(adapter_channels(adapter_class("simulator"))) == "sms"
    assert default_channel(adapter_channels(adapter_class("fortytwo_voice"))) == "voice"


def test_push_providers_need_a_callback_url() -> None:
    assert pushes_status(adapter_class("fortytwo_voice"))
    assert not pushes_status(adapter_class("retarus_sms"))


class CheckedServers(SimulatorProvider):
    """Records the status servers each check was asked with; rejects one of them."""

    secret_options = frozenset({"password"})
    checked: ClassVar[list[list[str]]] = []

    async def check(self) -> ProviderInfo:
        urls: list[str] = self.options["status_urls"]
        self.checked.append(urls)
        if "https://wrong.example" in urls:
            raise AuthError(self.name, f"{self.options['password']} is not valid there")
        return ProviderInfo(provider=self.name)


async def test_the_send_server_is_checked_too_when_status_comes_from_others() -> None:
    options: dict[str, Any] = {"password": "S3cret-pa55", "base_url": "https://send.example",
                               "status_urls": ["https://status.example"]}
    CheckedServers.checked.clear()
    await check_provider(CheckedServers, "sim", options)
    assert CheckedServers.checked == [["https://status.example"], ["https://send.example"]]

    CheckedServers.checked.clear()
    redactor = Redactor()
    with pytest.raises(AuthError) as caught:
        await check_provider(CheckedServers, "sim",
                             {**options, "base_url": "https://wrong.example"},
                             redactor=redactor)
    assert "S3cret-pa55" not in redactor.text(str(caught.value))
