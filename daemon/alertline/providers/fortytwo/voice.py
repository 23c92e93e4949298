"""Fortytwo Voice Messaging: TTS or audio calls, up to 500 destinations per job, status by postback.

Wire facts come from the seed ``fortytwo-voice-api.txt`` and PROVIDERS.md section E. The voice
endpoint URL is not public (default ``https://rest.fortytwo.com`` + ``/1/voice``, inferred from
Fortytwo's other REST APIs), so base URL and path are options.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, ClassVar

import httpx
import voluptuous as vol

from alertline.errors import ProviderAnswerError, ProviderError, RejectedError, ValidationError
from alertline.http.postbacks import provider_callback_url
from alertline.model import Channel, DeliveryState
from alertline.phone import NumberFormat, format_number
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
from alertline.providers.fortytwo.wire import (
    DOCUMENTED_LANGUAGES,
    FALLBACK_LANGUAGE,
    HTTP_REASONS,
    KEYPRESS_FIELDS,
    STATUS_MAP,
    check_audio_url,
    client_job_id,
    description_of,
    error_for_code,
    index_results,
    message_key,
    parse_postback,
    sender_id,
    status_code_of,
)

_LOGGER = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://rest.fortytwo.com"
DEFAULT_PATH = "/1/voice"
_ACCEPTED = (200, 201)
# statuses whose body is the result_info envelope, not a plain HTTP error
_ENVELOPE_STATUSES = (400, 401, 403, 404, 405, 413, 415)
_over_10s = vol.All(vol.Coerce(int), vol.Range(min=11))
_voice = vol.All(str, vol.Length(min=1))
_states = vol.In([state.value for state in DeliveryState])


class FortytwoVoiceProvider(Provider):
    """Fortytwo Voice Messaging API: one job per batch, status pushed to the callback URL."""

    type = "fortytwo_voice"
    description = ("Fortytwo Voice Messaging: text-to-speech or audio-file calls, up to 500 "
                   "destinations per job, delivery status by HTTP postback")
    default_capabilities = Capabilities(
        channels=frozenset({Channel.VOICE}),
        max_recipients=500,
        status=StatusMode.PUSH,
        tracking_deadline=3600.0,
        shared_content=True,
        number_format=NumberFormat.DIGITS,
    )
    secret_options = frozenset({"token"})
    options_schema: ClassVar[dict[Any, Any]] = {
        vol.Required("token", description="API token (UUID) from the Client Control Panel, "
                     "VOICE tab; sent as 'Authorization: Token <uuid>'"):
            vol.All(str, vol.Length(min=8)),
        vol.Optional("base_url", default=DEFAULT_BASE_URL,
                     description="API root; the voice endpoint is not public, so this is "
                     "inferred from Fortytwo's other REST APIs"): vol.Url(),
        vol.Optional("path", default=DEFAULT_PATH,
                     description="path of the 'trigger call' endpoint below base_url"): str,
        vol.Optional("callback_url", description="postback URL sent with every job; wins over "
                     "the daemon's own postback URL"): vol.Url(),
        vol.Optional("sender_id", description="default caller id (7-15 digits); an alert's "
                     "sender wins"): str,
        vol.Optional("tts_voice", description="default TTS voice, e.g. man or woman"): _voice,
        vol.Optional("tts_lang", description="default TTS language, e.g. en-GB"): _voice,
        vol.Optional("tts_voices", default=["man", "woman"],
                     description="voices accepted locally (case-insensitive)"): [str],
        vol.Optional("tts_languages", default=list(DOCUMENTED_LANGUAGES),
                     description="TTS languages of your token: a requested language outside "
                     "them falls back (alert, locale, tts_lang, en-GB) instead of failing with "
                     "-97; default: the documented ones; empty = not checked"): [str],
        vol.Optional("use_locale", default=True, description="derive tts_lang from the alert's "
                     "locale (de_DE -> de-DE) unless the alert sets tts_lang"): bool,
        vol.Optional("enable_menu_response", description="let the callee answer with a keypress "
                     "0-9 (sent only when set)"): bool,
        vol.Optional("time_limit_seconds", description="maximum call length, more than 10 s"):
            _over_10s,
        vol.Optional("ring_timeout_seconds", description="how long to ring, more than 10 s"):
            _over_10s,
        vol.Optional("numbers_as_strings", default=True, description="send the *_seconds values "
                     "as JSON strings, as Fortytwo's samples do"): bool,
        vol.Optional("voice_content", default={}, description="extra voice_content fields sent "
                     "as they are (e.g. undocumented retry settings)"): {str: object},
        vol.Optional("tts_text_min_length", default=7,
                     description="shortest TTS text (seed, code -95)"): vol.All(int, vol.Range(0)),
        vol.Optional("tts_text_max_length", description="longest TTS text; unset = no local "
                     "limit (the seed's '15' is evidently copied from job_id)"):
            vol.All(int, vol.Range(1)),
        vol.Optional("check_audio_url", default=True, description="check audio URLs locally: "
                     "http(s), no spaces, file name [A-Za-z0-9_-].mp3/.wav"): bool,
        vol.Optional("max_destinations", default=500, description="destinations per job: 500 "
                     "for 'Voice' routing, 1 for 'Voice Plus'"): vol.All(int, vol.Range(1, 500)),
        vol.Optional("send_custom_ids", default=True,
                     description="send each delivery id as the destination's custom_id"): bool,
        vol.Optional("send_job_id", default=True, description="send the alert id as job_id "
                     "(hashed to 15 characters when it does not fit 7-15)"): bool,
        vol.Optional("status_map", default={}, description="extra or overriding postback "
                     "statuses, e.g. {NOANSWER: failed}"): {str: _states},
        vol.Optional("keypress_fields", default=list(KEYPRESS_FIELDS), description="postback "
                     "fields that may carry the menu-response digit (name not public)"): [str],
        vol.Optional("check_probe", default=True, description="check() posts an invalid job "
                     "(destinations not a list) to verify the token without placing a call"): bool,
        **transport_options(deadline=3600.0, retried="429, 5xx, connection errors, -105 "
                            "and -112"),
    }
    alert_options_schema: ClassVar[dict[Any, Any]] = {
        vol.Optional("tts_voice", description="TTS voice for this alert"): _voice,
        vol.Optional("tts_lang", description="TTS language for this alert, e.g. de-DE"): _voice,
        vol.Optional("enable_menu_response", description="ask for a keypress 0-9"): bool,
        vol.Optional("time_limit_seconds", description="maximum call length, more than 10 s"):
            _over_10s,
        vol.Optional("ring_timeout_seconds", description="how long to ring, more than 10 s"):
            _over_10s,
        vol.Optional("voice_content", description="extra voice_content fields for this alert"):
            {str: object},
    }

    def __init__(self, name: str, options: dict[str, Any], context: ProviderContext) -> None:
        super().__init__(name, self.validate_options(options), context)
        opts = self.options
        self.capabilities = dataclasses.replace(
            tracking_capabilities(self.default_capabilities, opts),
            max_recipients=opts["max_destinations"])
        self._status_map = {**STATUS_MAP, **{key.upper(): DeliveryState(value)
                                             for key, value in opts["status_map"].items()}}
        self._api = HttpApi.for_context(
            name, opts["base_url"], context, opts, reasons=HTTP_REASONS, classify=self._classify,
            headers={"Authorization": f"Token {opts['token']}",
                     "Content-Type": "application/json; charset=utf-8"})
        if self.callback_url is None:
            _LOGGER.warning("%s: no callback URL; call status reaches only the token's default "
                            "callback URL, if it has one", name)

    @property
    def callback_url(self) -> str | None:
        """Where Fortytwo posts call status: the option, else the host's postback URL."""
        explicit: str | None = self.options.get("callback_url")
        if explicit:
            return explicit
        base = self.context.callback_base_url
        return provider_callback_url(base, self.name) if base else None

    def _classify(self, response: httpx.Response) -> ProviderError | None:
        """The seed's typed error for Fortytwo's ``result_info`` envelope, if it reports one.

        A non-zero ``status_code`` (or an envelope status) is an error; raised inside the attempt,
        -105 (server too busy) and -112 are retried like a 429/5xx.
        """
        status = response.status_code
        if status not in _ACCEPTED and status not in _ENVELOPE_STATUSES:
            return None  # 429, 5xx...: the shared status mapping
        try:
            body = response.json()
        except ValueError:
            body = None
        code = status_code_of(body)
        if status in _ACCEPTED and code in (None, 0):
            return None
        description = description_of(body)
        return error_for_code(self.name, code,
                              self.context.redactor.text(description) if description else None,
                              status)

    async def submit(self, batch: Batch) -> Submission:
        """Queue one job for the batch; message ids come back per destination number."""
        body = self.job_body(batch)
        response = await self._api.request(
            "POST", self.options["path"], content=json.dumps(body).encode(), expected=_ACCEPTED)
        answer = json_object(self.name, response)
        submission = self._submission(batch, body, answer)
        _LOGGER.debug("%s: job %s queued for %d destination(s)", self.name,
                      submission.provider_ref, len(batch.items))
        return submission

    def job_body(self, batch: Batch) -> dict[str, Any]:
        """The JSON job for ``batch``, checked with the seed's rules (:class:`ValidationError`)."""
        if batch.channel is not Channel.VOICE:
            raise ValidationError("channel", "Fortytwo places voice calls only")
        try:
            alert = self.validate_alert_options(dict(batch.options))
        except vol.Invalid as err:
            path = ".".join(str(part) for part in err.path)
            raise ValidationError(f"options.{path}" if path else "options", err.msg) from None
        body: dict[str, Any] = {"destinations": self._destinations(batch),
                                "voice_content": self._voice_content(batch, alert)}
        if self.options["send_job_id"]:
            body["job_id"] = client_job_id(batch.reference)
        if self.callback_url:
            body["callback_url"] = self.callback_url
        return body

    def _destinations(self, batch: Batch) -> list[dict[str, str]]:
        if not batch.items:
            raise ValidationError("to", "no destinations (Fortytwo code -88)")
        limit = self.options["max_destinations"]
        if len(batch.items) > limit:
            raise ValidationError("to", f"{len(batch.items)} destinations; this routing allows "
                                  f"{limit} per job (Fortytwo code -86)")
        destinations: list[dict[str, str]] = []
        numbers: set[str] = set()
        custom_ids: set[str] = set()
        for item in batch.items:
            number = format_number(item.number, NumberFormat.DIGITS)
            if not number.isdigit() or not 7 <= len(number) <= 15:
                raise ValidationError("to", f"{item.number}: Fortytwo needs 7 to 15 digits "
                                      "(code -85)")
            if number in numbers:
                raise ValidationError("to", f"{item.number} appears twice in one job; Fortytwo "
                                      "reports results by number")
            numbers.add(number)
            destination = {"number": number}
            if self.options["send_custom_ids"]:
                if item.delivery_id in custom_ids:
                    raise ValidationError("to", f"custom_id {item.delivery_id} is not unique "
                                          "(Fortytwo code -102)")
                custom_ids.add(item.delivery_id)
                destination["custom_id"] = item.delivery_id
            destinations.append(destination)
        return destinations

    def _voice_content(self, batch: Batch, alert: dict[str, Any]) -> dict[str, Any]:
        opts = self.options
        extra = {**opts["voice_content"], **alert.get("voice_content", {})}
        content: dict[str, Any] = {}
        sender = batch.sender or opts.get("sender_id")
        if sender:
            content["sender_id"] = sender_id(sender)
        if batch.audio_url:
            tts = [f"options.{key}" for key in ("tts_voice", "tts_lang") if key in alert]
            tts += [f"options.voice_content.{key}" for key in extra if key.startswith("tts_")]
            if tts:
                raise ValidationError(tts[0], "cannot use TTS properties in a call with "
                                      "audio_url (Fortytwo codes -81/-90)")
            if opts["check_audio_url"]:
                check_audio_url(batch.audio_url)
            content["audio_file_url"] = batch.audio_url
        else:
            if "audio_file_url" in extra:
                raise ValidationError("options.voice_content.audio_file_url", "cannot use "
                                      "audio_file_url in a TTS call; use audio_url (code -91)")
            content.update(self._tts(batch, alert))
        for key in ("time_limit_seconds", "ring_timeout_seconds"):
            seconds = alert.get(key, opts.get(key))
            if seconds is not None:
                content[key] = str(seconds) if opts["numbers_as_strings"] else seconds
        menu = alert.get("enable_menu_response", opts.get("enable_menu_response"))
        if menu is not None:
            content["enable_menu_response"] = menu
        return {**extra, **content}

    def _tts(self, batch: Batch, alert: dict[str, Any]) -> dict[str, str]:
        opts = self.options
        texts = {item.text for item in batch.items}
        if len(texts) > 1:
            raise ValidationError("message", "Fortytwo sends one text per job, but the "
                                  "personalised texts of this batch differ")
        text = texts.pop().strip() if texts else ""
        if not text:
            raise ValidationError("message", "a call needs a text or an audio_url (code -89)")
        shortest, longest = opts["tts_text_min_length"], opts.get("tts_text_max_length")
        if len(text) < shortest or (longest is not None and len(text) > longest):
            bound = f"{shortest} to {longest}" if longest is not None else f"at least {shortest}"
            raise ValidationError("message", f"the TTS text must have {bound} characters, it "
                                  f"has {len(text)} (Fortytwo code -95)")
        tts = {"tts_text": text, "tts_lang": self._tts_lang(batch, alert)}
        voice = alert.get("tts_voice", opts.get("tts_voice"))
        if voice is not None:
            allowed = {v.lower() for v in opts["tts_voices"]}
            if allowed and voice.lower() not in allowed:
                raise ValidationError("options.tts_voice", f"{voice!r} is not one of "
                                      f"{sorted(allowed)} (Fortytwo code -96)")
            tts["tts_voice"] = voice
        return tts

    def _tts_lang(self, batch: Batch, alert: dict[str, Any]) -> str:
        """The first requested TTS language Fortytwo is known to speak (seed code -97).

        In order: the alert's ``tts_lang`` option, the alert's (or the route's, or all its
        contacts') locale, the provider's ``tts_lang``, then en-GB (the documented one).
        """
        known: dict[str, str] = {str(lang).lower(): str(lang)
                                 for lang in self.options["tts_languages"]}
        locales = {item.locale for item in batch.items if item.locale}
        locale = batch.locale or (locales.pop() if len(locales) == 1 else None)
        wanted = [alert.get("tts_lang"),
                  locale.replace("_", "-") if locale and self.options["use_locale"] else None,
                  self.options.get("tts_lang")]
        for lang in filter(None, wanted):
            if not known or lang.lower() in known:
                return str(lang)
        choice = known.get(FALLBACK_LANGUAGE.lower(), FALLBACK_LANGUAGE)
        if wanted[0] or wanted[1]:
            _LOGGER.info("%s: TTS language %s is not in tts_languages; speaking %s", self.name,
                         wanted[0] or wanted[1], choice)
        return choice

    def _submission(self, batch: Batch, body: dict[str, Any],
                    answer: dict[str, Any]) -> Submission:
        job = first_present(answer, "api_job_id")
        if job is None:
            raise ProviderAnswerError(self.name, "answer without api_job_id")
        results = answer.get("results")
        by_number, by_custom = index_results(results)
        items = []
        for item, destination in zip(batch.items, body["destinations"], strict=True):
            result = by_custom.get(item.delivery_id) or by_number.get(destination["number"])
            message_id = first_present(result, "message_id") if result else None
            if message_id is None and results:
                items.append(SubmittedItem(
                    delivery_id=item.delivery_id, number=item.number,
                    state=DeliveryState.REJECTED, provider_status="NOT_QUEUED",
                    reason="Fortytwo returned no message_id for this number (sanitised away)"))
                continue
            items.append(SubmittedItem(
                delivery_id=item.delivery_id, number=item.number, provider_status="QUEUED",
                provider_message_id=message_key(job, message_id)
                if message_id is not None else None))
        voice = body["voice_content"]
        return Submission(
            provider_ref=str(job), items=tuple(items), submitted_at=self.context.clock.now(),
            data={"api_job_id": str(job),
                  "client_job_id": first_present(answer, "client_job_id") or body.get("job_id"),
                  "job_type": "AUDIO" if "audio_file_url" in voice else "TTS",
                  "tts_lang": voice.get("tts_lang"),
                  "callback": "callback_url" in body})

    def parse_push(self, payload: Any) -> list[StatusUpdate]:
        """Status updates from one Fortytwo postback body (ringing, answered, UNDELIV, ...)."""
        return parse_postback(payload, self._status_map, tuple(self.options["keypress_fields"]))

    async def check(self) -> ProviderInfo:
        """Verify the token with a job Fortytwo must refuse (``destinations`` not a list)."""
        details: dict[str, Any] = {"endpoint": self._api.url(self.options["path"]),
                                   "callback": self.callback_url is not None}
        if not self.options["check_probe"]:
            return ProviderInfo(provider=self.name, details={**details, "probe": False})
        probe = {"destinations": "alertline-check"}
        try:
            await self._api.request("POST", self.options["path"],
                                    content=json.dumps(probe).encode(), expected=_ACCEPTED)
        except RejectedError as err:
            if err.status not in (400, 403):  # a validation answer: the token was accepted
                raise
            return ProviderInfo(provider=self.name, details={**details, "probe": err.code})
        return ProviderInfo(provider=self.name, details={**details, "probe": "0"})

    async def aclose(self) -> None:
        """Close the HTTP client if the adapter created it."""
        await self._api.aclose()


ADAPTER = FortytwoVoiceProvider
