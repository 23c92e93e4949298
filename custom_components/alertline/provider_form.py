"""Provider forms from the library's description of each adapter's options: required and
everyday options (base URL, sender or caller id, locale) as fields, every other one through
``advanced_options``; the library validates the result and checks the credentials."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.core import HomeAssistant
from homeassistant.helpers.httpx_client import get_async_client
from homeassistant.helpers.selector import (
    ObjectSelector,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)

from alertline import (
    AuthError,
    ConfigError,
    Provider,
    ProviderError,
    RateLimitedError,
    Redactor,
    TransientError,
    ValidationError,
    adapter_class,
    adapter_options,
    check_provider,
)

_LOGGER = logging.getLogger(__name__)

ADVANCED_OPTIONS = "advanced_options"
EVERYDAY_OPTIONS = ("base_url", "url", "sender", "sender_id", "caller_id", "locale")
SENDER_OPTIONS = frozenset({"sender", "sender_id", "caller_id", "source"})


class ProviderFormError(Exception):
    """A form problem: ``errors`` for the form, ``problem`` for the description placeholder."""

    def __init__(self, errors: dict[str, str], problem: str = "") -> None:
        super().__init__(problem or ", ".join(errors.values()))
        self.errors = errors
        self.problem = problem


async def async_adapter(hass: HomeAssistant, provider_type: str) -> type[Provider]:
    """The adapter class, imported outside the event loop the first time."""
    return await hass.async_add_import_executor_job(adapter_class, provider_type)


def field_keys(adapter: type[Provider], *, secrets_only: bool = False) -> list[str]:
    """The options shown as fields: required ones and the everyday ones (or only the secrets)."""
    return [o.name for o in adapter_options(adapter) if o.secret or (not secrets_only
            and (o.required or o.name in EVERYDAY_OPTIONS))]


def _required(adapter: type[Provider]) -> list[str]:
    return [o.name for o in adapter_options(adapter) if o.required]


def _selector(adapter: type[Provider], key: str) -> TextSelector:
    if key in adapter.secret_options:
        return TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
    if key.endswith("url"):
        return TextSelector(TextSelectorConfig(type=TextSelectorType.URL))
    return TextSelector()


def form_schema(adapter: type[Provider], current: Mapping[str, Any] | None = None, *,
                secrets_only: bool = False) -> vol.Schema:
    """The form of ``adapter``'s options; ``current`` values are suggested (never secrets)."""
    current = current or {}
    fields = field_keys(adapter, secrets_only=secrets_only)
    schema: dict[Any, Any] = {}
    for option in (o for o in adapter_options(adapter) if o.name in fields):
        suggested = current.get(option.name)
        if suggested is None and isinstance(option.default, str):
            suggested = option.default
        if option.secret:
            suggested = None
        required = option.required and not (current and option.name in current)
        field_type = vol.Required if required else vol.Optional
        described = {"suggested_value": suggested} if suggested is not None else None
        schema[field_type(option.name, description=described)] = _selector(adapter, option.name)
    if not secrets_only:
        advanced = {k: v for k, v in current.items() if k not in schema}
        schema[vol.Optional(ADVANCED_OPTIONS, description=(
            {"suggested_value": advanced} if advanced else None))] = ObjectSelector()
    return vol.Schema(schema)


def options_help(adapter: type[Provider]) -> str:
    """A Markdown list of every option with its description (the form's description text)."""
    return "\n".join(
        f"- `{o.name}`{' (required)' if o.required else ''}"
        f"{f' (default: {o.default})' if o.default not in (None, '', [], {}) else ''}: "
        f"{o.description}" for o in adapter_options(adapter))


def options_from_input(adapter: type[Provider], user_input: Mapping[str, Any],
                       previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The raw provider options from a submitted form: a field left empty removes its option,
    except a secret, which keeps its previous value (secrets are never shown again)."""
    advanced = user_input.get(ADVANCED_OPTIONS) or {}
    if not isinstance(advanced, Mapping):
        raise ProviderFormError({ADVANCED_OPTIONS: "invalid_option"},
                                "advanced options must be a mapping of option: value")
    previous = previous or {}
    options: dict[str, Any] = {str(k): v for k, v in advanced.items()}
    for key in field_keys(adapter):
        value = user_input.get(key)
        if value not in (None, ""):
            options[key] = value
        elif key in adapter.secret_options and previous.get(key):
            options[key] = previous[key]
        elif key not in user_input and key in advanced:
            continue
        else:
            options.pop(key, None)
    return options


def validate_options(adapter: type[Provider], options: dict[str, Any]) -> dict[str, Any]:
    """The library's validation of ``options``; problems become form errors by field."""
    try:
        return adapter.validate_options(options)
    except vol.Invalid as err:
        errors = err.errors if isinstance(err, vol.MultipleInvalid) else [err]
        form: dict[str, str] = {}
        problems = []
        fields = set(field_keys(adapter))
        for error in errors:
            key = str(error.path[0]) if error.path else ""
            message = error.error_message or str(error)
            if message == "extra keys not allowed":
                message = f"not an option of {adapter.type}"
            problems.append(f"{'.'.join(str(p) for p in error.path) or 'options'}: {message}")
            target = key if key in fields else ADVANCED_OPTIONS
            form[target] = "invalid_sender" if key in SENDER_OPTIONS else "invalid_option"
        raise ProviderFormError(form, "; ".join(problems)) from None


def account_id(adapter: type[Provider], options: Mapping[str, Any]) -> str:
    """The unique id of the account: non-secret required options, else a hash of the secrets.
    Not the URL: the same account may move to another server (reconfigure)."""
    visible = [str(options[k]) for k in _required(adapter)
               if k not in adapter.secret_options and options.get(k)]
    if not visible:
        secret = "|".join(str(options.get(k, "")) for k in sorted(adapter.secret_options))
        visible = [hashlib.sha256(secret.encode()).hexdigest()[:16]] if secret.strip("|") else []
    return ":".join([adapter.type, *visible])


def account_title(adapter: type[Provider], options: Mapping[str, Any]) -> str:
    """A readable default title: the adapter type and the account's visible name, if any."""
    visible = next((str(options[k]) for k in _required(adapter)
                    if k not in adapter.secret_options and options.get(k)), None)
    return f"{adapter.type} ({visible})" if visible else adapter.type


def identity_is_secret(adapter: type[Provider]) -> bool:
    """Whether the account id is derived from a secret (it then changes with the secret)."""
    return all(key in adapter.secret_options for key in _required(adapter))


async def async_check(hass: HomeAssistant, adapter: type[Provider], name: str,
                      options: dict[str, Any], callback_base_url: str | None = None) -> None:
    """The library's credential check with validated ``options``; failures become form errors."""
    redactor = Redactor()
    try:
        await check_provider(adapter, name, options, http=get_async_client(hass),
                             callback_base_url=callback_base_url, redactor=redactor)
    except ConfigError as err:
        raise ProviderFormError({ADVANCED_OPTIONS: "invalid_option"}, str(err)) from None
    except AuthError:
        raise ProviderFormError({"base": "invalid_auth"}) from None
    except (TransientError, RateLimitedError) as err:
        raise ProviderFormError({"base": "cannot_connect"}, redactor.text(str(err))) from None
    except ValidationError as err:
        key = "invalid_sender" if err.field in SENDER_OPTIONS else "invalid_option"
        raise ProviderFormError({"base": key}, redactor.text(str(err))) from None
    except ProviderError as err:
        raise ProviderFormError({"base": "provider_error"}, redactor.text(str(err))) from None
    except Exception:
        _LOGGER.exception("unexpected error while checking %s", adapter.type)
        raise ProviderFormError({"base": "unknown"}) from None
