"""MTS Exolve Voice API: voice messages ("голосовые SMS") as phone calls, tracked by polling.

One call per recipient (``call/v1/MakeVoiceMessage``), either playing a voice-message resource
(``service_id``, managed with ``voice-message/v1/Create|GetList|GetInfo|Delete``; documented) or
speaking the alert text (the ``tts`` variant, known from third-party clients only, PROVIDERS.md
D [C2]). When Exolve refuses text-to-speech with a validation error and a ``service_id`` is
configured, the call is placed again with it; the delivery details say which was used
(``mode``, ``tts_refused``). ``call/v1/GetInfo`` is polled until the call's status is final.
Seed: ``exolve-voice-api.ru.txt``; PROVIDERS.md D.

No documented answer says whether the callee pressed the redirect digit, so an Exolve call
cannot acknowledge an alert.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import voluptuous as vol

from alertline.errors import (
    AuthError,
    ProviderAnswerError,
    ProviderError,
    RejectedError,
    ValidationError,
)
from alertline.model import Channel, DeliveryState
from alertline.phone import NumberFormat, format_number, parse_e164
from alertline.providers._http import (
    HttpApi,
    first_present,
    json_object,
    tracking_capabilities,
    transport_options,
)
from alertline.providers.base import (
    Batch,
    Capabilities,
    Provider,
    ProviderContext,
    ProviderInfo,
    StatusMode,
    StatusUpdate,
    Submission,
    SubmittedItem,
)
from alertline.providers.exolve.wire import (
    CallInfo,
    VoiceMessage,
    VoiceMessageSummary,
    describe_error,
    explain,
    map_status,
    parse_call_info,
    parse_voice_message,
    parse_voice_message_list,
)

__all__ = ["CallInfo", "ExolveVoiceProvider", "VoiceMessage", "VoiceMessageSummary"]

_LOGGER = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.exolve.ru"
VM_CREATE = "voice-message/v1/Create"
VM_LIST = "voice-message/v1/GetList"
VM_INFO = "voice-message/v1/GetInfo"
VM_DELETE = "voice-message/v1/Delete"
CALL_MAKE = "call/v1/MakeVoiceMessage"
CALL_INFO = "call/v1/GetInfo"

_STATES = [s.value for s in DeliveryState if s not in (DeliveryState.PENDING,
                                                          DeliveryState.REJECTED)]
_number = vol.All(str, vol.Match(r"^\+?\d{9,15}$",
                                 msg="digits with country code, e.g. 74959999999"))
_tts_extra: dict[Any, Any] = {
    vol.Optional("tts_speed", description="TTS speech rate, e.g. 0.9"):
        vol.All(vol.Coerce(float), vol.Range(min=0.1, max=10)),
    vol.Optional("tts_volume", description="TTS volume (passed through as given)"):
        vol.Any(int, float),
    vol.Optional("tts_emotion", description="TTS emotion (passed through as given)"):
        vol.Any(int, str),
}
_tts_enum = vol.All(vol.Coerce(int), vol.Range(min=0))
_TTS_KEYS = {"tts_voice": "voice", "tts_lang": "lang", "tts_speed": "speed",
             "tts_volume": "volume", "tts_emotion": "emotion"}


class ExolveVoiceProvider(Provider):
    """MTS Exolve voice messages: one call per recipient, status polled with call/v1/GetInfo."""

    type = "exolve_voice"
    description = "MTS Exolve Voice API (api.exolve.ru): voice-message calls, TTS or uploaded audio"
    default_capabilities = Capabilities(
        channels=frozenset({Channel.VOICE}),
        max_recipients=1,
        status=StatusMode.POLL,
        poll_interval=10.0,
        max_poll_interval=60.0,
        tracking_deadline=900.0,
        number_format=NumberFormat.DIGITS,
    )
    options_schema: ClassVar[dict[Any, Any]] = {
        vol.Required("api_key", description="application API key, sent as 'Authorization: "
                                            "Bearer <key>'"): vol.All(str, vol.Length(min=8)),
        vol.Required("source", description="caller number of the account, digits with country "
                                           "code (e.g. 74959999999); an alert's sender overrides"):
            _number,
        vol.Optional("base_url", default=DEFAULT_BASE_URL, description="API base URL"):
            vol.All(str, vol.Match(r"^https?://", msg="must start with http:// or https://")),
        vol.Optional("service_id", description="voice-message resource id to play "
                                               "(voice-message/v1/Create); unset = text-to-speech"):
            vol.All(str, vol.Length(min=1)),
        vol.Optional("tts", default=True,
                     description="speak the alert text (MakeVoiceMessage 'tts') when no "
                                 "service_id is set"): bool,
        vol.Optional("prefer_tts", default=False,
                     description="speak the alert text even when service_id is set; the "
                                 "service_id is then the fallback"): bool,
        vol.Optional("service_fallback", default=True,
                     description="when Exolve refuses text-to-speech with a validation error "
                                 "(400), play service_id instead (if one is set)"): bool,
        vol.Optional("tts_voice", default=1, description="TTS voice number (1 = Alyona)"):
            _tts_enum,
        vol.Optional("tts_lang", default=1, description="TTS language number (1 = Russian)"):
            _tts_enum,
        **_tts_extra,
        vol.Optional("tts_max_chars", default=1000,
                     description="longest text Exolve synthesises; longer alerts are rejected"):
            vol.All(vol.Coerce(int), vol.Range(min=1, max=100000)),
        vol.Optional("status_map", default={},
                     description="extra or overriding call statuses, e.g. {modified: sent}"):
            {str: vol.In(_STATES)},
        **transport_options(poll_interval=10.0, deadline=900.0),
    }
    alert_options_schema: ClassVar[dict[Any, Any]] = {
        vol.Optional("service_id", description="voice-message resource to play for this alert"):
            vol.All(str, vol.Length(min=1)),
        vol.Optional("tts", description="true: speak the text even if a service_id is set; "
                                        "false: never use text-to-speech"): bool,
        vol.Optional("tts_voice", description="TTS voice number for this alert"): _tts_enum,
        vol.Optional("tts_lang", description="TTS language number for this alert"): _tts_enum,
        **_tts_extra,
    }
    secret_options = frozenset({"api_key"})

    def __init__(self, name: str, options: dict[str, Any], context: ProviderContext) -> None:
        super().__init__(name, options, context)
        self.capabilities = tracking_capabilities(self.default_capabilities, options)
        self._status_map = {key: DeliveryState(value)
                            for key, value in (options.get("status_map") or {}).items()}
        self._api = HttpApi.for_context(
            name, str(options.get("base_url") or DEFAULT_BASE_URL), context, options,
            headers={"Authorization": f"Bearer {options['api_key']}",
                     "Accept": "application/json"},
            describe_error=describe_error)

    # -- calls ------------------------------------------------------------------------------

    async def submit(self, batch: Batch) -> Submission:
        """Place one call (``call/v1/MakeVoiceMessage``) to the batch's single recipient."""
        if len(batch.items) != 1:
            raise ValidationError("to", f"{self.type} places one call per request, "
                                        f"got {len(batch.items)} recipients")
        item = batch.items[0]
        source = self._wire_number(batch.sender or str(self.options["source"]), "sender")
        body: dict[str, Any] = {"source": source,
                                "destination": format_number(item.number, NumberFormat.DIGITS)}
        mode, content = self._content(batch, item.text)
        refused: str | None = None
        try:
            answer = await self._post(CALL_MAKE, {**body, **content}, idempotent=False)
        except RejectedError as err:
            fallback = self._service_fallback(batch, mode, err)
            if fallback is None:
                raise
            refused = err.message
            _LOGGER.warning("%s: Exolve refused text-to-speech (%s); playing voice message %s "
                            "instead", self.name, refused, fallback)
            mode, content = "service", {"service_id": fallback}
            answer = await self._post(CALL_MAKE, {**body, **content}, idempotent=False)
        call_id = first_present(answer, "call_id")
        if isinstance(call_id, bool) or not isinstance(call_id, str | int) or call_id == "":
            raise ProviderAnswerError(self.name, "MakeVoiceMessage answer without a call_id")
        _LOGGER.debug("%s: call %s placed (%s)", self.name, call_id, mode)
        data: dict[str, Any] = {"call_id": call_id, "mode": mode, "source": source}
        if "service_id" in content:
            data["service_id"] = content["service_id"]
        if refused is not None:
            data["tts_refused"] = refused
        return Submission(
            provider_ref=str(call_id),
            items=(SubmittedItem(delivery_id=item.delivery_id, number=item.number,
                                 provider_message_id=str(call_id)),),
            submitted_at=self.context.clock.now(), data=data)

    def _content(self, batch: Batch, text: str) -> tuple[str, dict[str, Any]]:
        """``("service", {"service_id"})`` or ``("tts", {"tts": {...}})`` for this batch."""
        alert = batch.options
        if batch.audio_url:
            _LOGGER.warning("%s: audio_url is not supported by Exolve (it plays uploaded media "
                            "through a voice-message service_id); ignored", self.name)
        service_id = alert.get("service_id") or self.options.get("service_id")
        use_tts = alert.get("tts")
        if use_tts is None and self.options.get("prefer_tts"):
            use_tts = self.options.get("tts", True)
        if service_id and use_tts is not True:
            return "service", {"service_id": str(service_id)}
        if use_tts is False or (use_tts is None and not self.options.get("tts", True)):
            raise ValidationError("options.service_id", "no voice-message service_id is "
                                  "configured and text-to-speech is disabled")
        limit = int(self.options.get("tts_max_chars", 1000))
        if not text.strip():
            raise RejectedError(self.name, "text-to-speech needs a non-empty message",
                                code="tts_empty")
        if len(text) > limit:
            raise RejectedError(self.name, f"message is {len(text)} characters; Exolve "
                                f"text-to-speech takes at most {limit}", code="tts_too_long")
        tts: dict[str, Any] = {"text": text}
        for option, wire in _TTS_KEYS.items():
            value = alert.get(option, self.options.get(option, 1 if wire in ("voice", "lang")
                                                       else None))
            if value is not None:
                tts[wire] = value
        return "tts", {"tts": tts}

    def _service_fallback(self, batch: Batch, mode: str, err: RejectedError) -> str | None:
        """The ``service_id`` to play when Exolve refused text-to-speech, else None.

        Only a 400 that reads as a validation error (or an unknown text, e.g. a protobuf
        "unknown field") counts: TTS is known from third-party clients only (PROVIDERS.md D,
        [C2]); the documented refusals (trial number, account) would refuse the call anyway.
        """
        if mode != "tts" or err.status != 400 or not self.options.get("service_fallback", True):
            return None
        entry = explain(err.message)
        if entry is not None and entry.match != "validation error":
            return None
        service_id = batch.options.get("service_id") or self.options.get("service_id")
        return str(service_id) if service_id else None

    async def poll(self, submission: Submission) -> list[StatusUpdate]:
        """The status of the submission's call from ``call/v1/GetInfo``."""
        updates = []
        for item in submission.items:
            call_id: str | int = (submission.data.get("call_id") if len(submission.items) == 1
                                  else None) or item.provider_message_id or ""
            try:
                info = await self.get_call_info(call_id)
            except RejectedError as err:
                # 400/404 for this call_id: the documented "Not Found" means the voice message
                # has no media, so the call cannot play; it will not get better by polling.
                updates.append(StatusUpdate(
                    state=DeliveryState.FAILED, delivery_id=item.delivery_id,
                    provider_ref=submission.provider_ref, provider_message_id=str(call_id),
                    number=item.number, provider_status=f"HTTP {err.status or '?'}",
                    reason=err.message,
                    details={"call_id": call_id, **self._content_used(submission)}))
                continue
            state, reason = map_status(info.status, self._status_map)
            updates.append(StatusUpdate(
                state=state, delivery_id=item.delivery_id, provider_ref=submission.provider_ref,
                provider_message_id=str(call_id), number=item.number,
                provider_status=info.status, reason=reason,
                at=(info.ended or info.updated) if state.final else info.updated,
                details={**info.details(), **self._content_used(submission)}))
        return updates

    @staticmethod
    def _content_used(submission: Submission) -> dict[str, Any]:
        """What the call plays, for the delivery details: ``mode`` (tts or service), the
        ``service_id``, and why text-to-speech was not used if Exolve refused it."""
        keys = ("mode", "service_id", "tts_refused")
        return {key: submission.data[key] for key in keys if submission.data.get(key)}

    async def get_call_info(self, call_id: str | int) -> CallInfo:
        """``call/v1/GetInfo``: the call's status, times and duration."""
        answer = await self._post(CALL_INFO, {"call_id": call_id}, idempotent=True)
        return parse_call_info(self.name, str(call_id), answer)

    async def check(self) -> ProviderInfo:
        """Verify the API key (GetList) and, if configured, that ``service_id`` exists."""
        entries = await self.list_voice_messages()
        details: dict[str, Any] = {"voice_messages": len(entries),
                                   "mode": "service" if self.options.get("service_id") else "tts"}
        service_id = self.options.get("service_id")
        if service_id:
            try:
                message = await self.get_voice_message(str(service_id))
            except RejectedError as err:
                raise RejectedError(self.name, f"service_id {service_id!r}: {err.message}",
                                    code=err.code, status=err.status) from None
            details["service"] = message.to_json()
        return ProviderInfo(provider=self.name, version="v1", details=details)

    # -- voice-message resources ------------------------------------------------------------

    async def create_voice_message(self, name: str, media_id: int, *, digit: int | None = None,
                                   redirect_number: str | None = None) -> VoiceMessage:
        """``voice-message/v1/Create``: a resource playing ``media_id``, optionally redirecting."""
        if not name.strip():
            raise ValidationError("name", "must not be empty")
        if isinstance(media_id, bool) or not isinstance(media_id, int) or media_id < 0:
            raise ValidationError("media_id", "must be a non-negative integer")
        body: dict[str, Any] = {"name": name, "media_id": media_id}
        wire_redirect: str | None = None
        if digit is not None and (isinstance(digit, bool) or not 0 <= digit <= 9):
            raise ValidationError("digit", "must be a single digit 0-9")
        if redirect_number:
            wire_redirect = self._wire_number(redirect_number, "redirect_number")
            if not 9 <= len(wire_redirect) <= 14:
                raise ValidationError("redirect_number", "must be 9 to 14 digits")
            body["redirect_info"] = {"digit": 0 if digit is None else digit,
                                     "redirect_number": wire_redirect}
        elif digit is not None:
            raise ValidationError("redirect_number", "is needed when a redirect digit is given")
        answer = await self._post(VM_CREATE, body, idempotent=False)
        ident = first_present(answer, "id")
        if ident is None:
            raise ProviderAnswerError(self.name, "Create answer without an id")
        return VoiceMessage(id=str(ident), name=name, media_id=media_id,
                            digit=(0 if digit is None else digit) if wire_redirect else None,
                            redirect_number=wire_redirect)

    async def list_voice_messages(self) -> list[VoiceMessageSummary]:
        """``voice-message/v1/GetList``: every voice-message resource of the application."""
        answer = await self._post(VM_LIST, {}, idempotent=True)
        return parse_voice_message_list(self.name, answer)

    async def get_voice_message(self, message_id: str) -> VoiceMessage:
        """``voice-message/v1/GetInfo``: one voice-message resource."""
        answer = await self._post(VM_INFO, {"id": message_id}, idempotent=True)
        return parse_voice_message(self.name, answer)

    async def delete_voice_message(self, message_id: str) -> None:
        """``voice-message/v1/Delete``: remove a voice-message resource."""
        await self._post(VM_DELETE, {"id": message_id}, idempotent=True)

    # -- wire -------------------------------------------------------------------------------

    async def _post(self, path: str, body: dict[str, Any], *, idempotent: bool) -> dict[str, Any]:
        """POST a JSON body (every Exolve method is a POST); the answer as a JSON object."""
        try:
            response = await self._api.request("POST", path, json=body, idempotent=idempotent)
        except RejectedError as err:
            entry = explain(err.message)
            if entry is not None and entry.auth:
                # the seed documents a broken token as "400 failed to parse token"
                raise self._scrubbed(AuthError(self.name, err.message, code=err.code,
                                               status=err.status)) from None
            raise self._scrubbed(err) from None
        except ProviderError as err:
            raise self._scrubbed(err) from None
        if not response.content.strip():
            return {}
        return json_object(self.name, response)

    def _scrubbed(self, err: ProviderError) -> ProviderError:
        """``err`` with any secret the provider echoed in its answer masked."""
        scrub = self.context.redactor.text
        err.message = scrub(err.message)
        err.args = tuple(scrub(arg) if isinstance(arg, str) else arg for arg in err.args)
        return err

    def _wire_number(self, value: str, field: str) -> str:
        """A number as Exolve wants it: digits with country code, no ``+``."""
        text = value.strip()
        if text.isdigit():
            return text
        return format_number(parse_e164(text, field=field), NumberFormat.DIGITS)

    async def aclose(self) -> None:
        """Close the HTTP client if the adapter owns it."""
        await self._api.aclose()


ADAPTER = ExolveVoiceProvider
