"""Fortytwo Voice wire format: the response-code table, the answer envelope and postback parsing.

Source: the seed ``fortytwo-voice-api.txt`` (response codes -80 … -126, the job response and the
HTTP postback body) and PROVIDERS.md section E (what is inferred: the status vocabulary beyond
``UNDELIV``, the keypress field, the unit of ``micro_timestamp``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from alertline.errors import (
    AuthError,
    ProviderError,
    ProviderRefusedError,
    RateLimitedError,
    RejectedError,
    TransientError,
    ValidationError,
)
from alertline.model import DeliveryState
from alertline.providers._http import first_present
from alertline.providers.base import StatusUpdate

_JOB_ID = re.compile(r"[A-Za-z0-9_.:-]{7,15}")
_AUDIO_FILE = re.compile(r"[A-Za-z0-9_-]+\.(mp3|wav)", re.IGNORECASE)


# tts_lang values the documents show (the seed's postback and PROVIDERS.md E's samples: only
# en-GB; "15 languages" are confirmed but not named). More can be configured (tts_languages).
DOCUMENTED_LANGUAGES = ("en-GB",)
FALLBACK_LANGUAGE = "en-GB"


@dataclass(frozen=True, slots=True)
class ResponseCode:
    """One row of the seed's "Error/Success Messages" table."""

    message: str
    meaning: str
    error: type[ProviderError]


# code -> (response message, documented description, error class); HTTP status is 403 for all.
# ProviderRefusedError: a refusal of Fortytwo's own (funds, coverage, its TTS languages and
# voices, its text and sender lengths, its audio handling, a TEST account, the token's routing
# limit) that another provider of the route would not share, so the recipient fails over.
# RejectedError: the request itself is wrong or the number invalid, wherever it is sent.
RESPONSE_CODES: dict[int, ResponseCode] = {
    code: ResponseCode(message, meaning, error)
    for code, message, meaning, error in (
        (-50, "Not authorized", "The token is missing, invalid or revoked, or the host IP is not "
         "in the token's authorized IPs list", AuthError),
        (-80, "Invalid JSON Body", "The request sent has some invalid syntax that is breaking the "
         "JSON encoding", RejectedError),
        (-81, "Cannot use both Audio File and TTS at the same time", "", RejectedError),
        (-82, "{param_name} is not allowed", "The parameter passed is not a valid parameter",
         RejectedError),
        (-83, "Invalid type for 'destinations'", "The destinations element in the request is not "
         "an array", RejectedError),
        (-84, "Missing object called 'number' in 'destinations'", "The destinations element does "
         "not have any object with a field called number", RejectedError),
        (-85, "The destination number should have at least have 7 and a maximum of 15 digits",
         "The destination phone number does not meet the length specification", RejectedError),
        (-86, "There can only be X destination numbers", "The routing preference of the token "
         "limits the number of destinations per job", ProviderRefusedError),
        (-87, "There are no valid destination numbers in the 'destinations' parameter", "After "
         "the phone numbers were sanitized, no valid numbers remained", RejectedError),
        (-88, "The 'destinations' Object is missing", "The JSON body needs a destinations "
         "element", RejectedError),
        (-89, "Required 'tts_text' or 'audio_file_url' in the 'voice_content' object", "A call "
         "needs either tts_text or audio_file_url", RejectedError),
        (-90, "Cannot use 'tts' properties in a call of type 'Audio' in the 'voice_content' "
         "object", "An audio call carries a TTS parameter", RejectedError),
        (-91, "Cannot use 'audio_file_url' in a call of type 'TTS' in the 'voice_content' object",
         "A TTS call carries an audio parameter", RejectedError),
        (-92, "The 'sender_id' number should at least have 7 digits and a maximum of 15 digits",
         "The sender phone number does not meet the length specification",
         ProviderRefusedError),
        (-93, "Parameter 'enable_menu_response' has to be either 'true' or 'false'", "",
         RejectedError),
        (-95, "The 'tts_text' should at least have 7 characters and a maximum of 15", "",
         ProviderRefusedError),
        (-96, "The TTS voice selected is invalid. (e.g MAN or WOMAN)", "",
         ProviderRefusedError),
        (-97, "The TTS language selected is invalid", "", ProviderRefusedError),
        (-98, "The 'voice_content' Object is missing", "The JSON body needs a voice_content "
         "element", RejectedError),
        (-99, "The 'job_id' parameter should at least have 7 characters and a maximum of 15",
         "The job id must have 7 to 15 characters", RejectedError),
        (-101, "There was a problem with your job", "An error occurred while checking for funds "
         "or phone number coverage", ProviderRefusedError),
        (-102, "Custom ID is not unique", "The custom_ids passed with the destinations are not "
         "unique", RejectedError),
        (-103, "Parameter should be bigger than 10", "The value must be more than 10 seconds",
         RejectedError),
        (-104, "Parameter should be integer", "The parameter must be an integer", RejectedError),
        (-105, "Server too busy", "The system is too busy to handle the request; try again later",
         RateLimitedError),
        (-106, "The Audio File supplied cannot be downloaded to our servers", "An error occurred "
         "while handling audio management", ProviderRefusedError),
        (-107, "The Audio File format supplied is Invalid (must be MP3 or WAV)", "The URL has "
         "invalid characters (the file name may only use '-' and '_' besides letters and "
         "digits), or the file is not reachable", ProviderRefusedError),
        (-108, "The Audio File format supplied is corrupted", "The MP3 or WAV metadata could not "
         "be read", RejectedError),
        (-109, "The Audio File supplied cannot be processed. Please contact customer support",
         "The audio file could not be downloaded onto Fortytwo's servers",
         ProviderRefusedError),
        (-110, "There was some problems with the Audio File", "Downloading or reading the audio "
         "file failed", ProviderRefusedError),
        (-111, "The 'audio_file_url' must be valid (starting with http or https)", "",
         RejectedError),
        (-112, "Cannot establish service settings", "There is a problem in Fortytwo's VoIP system",
         TransientError),
        (-120, "Could not load the call details", "No call was found for the message_id",
         RejectedError),
        (-121, "Could not verify the Call Message ID", "The message_id is not numeric and 20 "
         "characters long", RejectedError),
        (-122, "Only 1 Destination allowed, when using a TEST Account", "A TEST account may call "
         "one number only; it must be promoted to a FULL account", ProviderRefusedError),
        (-123, "Only the personal mobile phone number can be used when using a TEST Account",
         "A TEST account may only call its own mobile number", ProviderRefusedError),
        (-125, "Could not load the Job details", "No job was found for the api_job_id",
         RejectedError),
        (-126, "Could not verify the api_job_id", "The api_job_id is not 36 characters long",
         RejectedError),
    )
}

HTTP_REASONS: dict[int, str] = {
    400: "Bad Request: the request is invalid and was not understood by the API",
    401: "Unauthorized: the Authorization header is missing, invalid or revoked, or this host's "
         "IP is not in the token's authorized IPs list",
    403: "The request contains invalid or illegal values",
    404: "Not Found: no voice API at this URL (check base_url and path)",
    405: "Method Not Allowed",
    413: "Request body too large",
    415: "Unsupported media type",
}


def status_code_of(body: Any) -> int | None:
    """``result_info.status_code`` as an int (the sample sends ``"0"``, the table an integer)."""
    info = body.get("result_info") if isinstance(body, Mapping) else None
    value = first_present(info, "status_code") if isinstance(info, Mapping) else None
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def description_of(body: Any) -> str | None:
    """``result_info.description``, if the body has one."""
    info = body.get("result_info") if isinstance(body, Mapping) else None
    value = first_present(info, "description") if isinstance(info, Mapping) else None
    return str(value)[:300] if value is not None else None


def error_for_code(provider: str, code: int | None, description: str | None,
                   http_status: int) -> ProviderError:
    """The typed error for a non-zero ``status_code`` (or a failed HTTP status without one)."""
    row = RESPONSE_CODES.get(code) if code is not None else None
    if row is None:
        reason = HTTP_REASONS.get(http_status, f"HTTP {http_status}")
        text = f"{description}: {reason}" if description else reason
        error: type[ProviderError] = AuthError if http_status == 401 else RejectedError
        return error(provider, f"HTTP {http_status}: {text}",
                     code=str(code) if code is not None else None, status=http_status)
    text = description or row.message
    if row.meaning and row.meaning.lower() not in text.lower():
        text = f"{text} ({row.meaning})"
    if row.error is RateLimitedError:
        return RateLimitedError(provider, text, code=str(code), status=http_status)
    return row.error(provider, text, code=str(code), status=http_status)


# Postback status -> normalised state. Only UNDELIV is confirmed [C]; the rest is inferred [I]
# (SMPP-style names as in Fortytwo's SMS/2FA callbacks) and can be extended by the `status_map`
# option.
STATUS_MAP: dict[str, DeliveryState] = {
    "RINGING": DeliveryState.SUBMITTED,
    "QUEUED": DeliveryState.SUBMITTED,
    "ACCEPTD": DeliveryState.SUBMITTED,
    "ANSWERED": DeliveryState.DELIVERED,
    "DELIVRD": DeliveryState.DELIVERED,
    "DELIVERED": DeliveryState.DELIVERED,
    "UNDELIV": DeliveryState.FAILED,
    "FAILED": DeliveryState.FAILED,
    "REJECTD": DeliveryState.FAILED,
    "REJECTED": DeliveryState.FAILED,
    "EXPIRED": DeliveryState.EXPIRED,
}

KEYPRESS_FIELDS = ("menu_response", "keypress", "dtmf", "menu_response_keypress", "key_pressed")


def parse_postback(payload: Any, status_map: Mapping[str, DeliveryState],
                   keypress_fields: tuple[str, ...] = KEYPRESS_FIELDS) -> list[StatusUpdate]:
    """The status updates in one postback body; :class:`ValidationError` names a malformed field."""
    if not isinstance(payload, Mapping):
        raise ValidationError("body", "a Fortytwo postback must be a JSON object")
    job = first_present(payload, "api_job_id")
    if not isinstance(job, str | int) or not str(job).strip():
        raise ValidationError("api_job_id", "missing")
    data = payload.get("data")
    if isinstance(data, Mapping):  # the table calls it CALLBACK_INFO; the samples send a list
        data = [data]
    if not isinstance(data, list):
        raise ValidationError("data", "must be a list of call objects")
    client_job = first_present(payload, "client_job_id")
    return [_call_update(str(job), client_job, item, where=f"data[{index}]",
                         status_map=status_map, keypress_fields=keypress_fields)
            for index, item in enumerate(data)]


def _call_update(job: str, client_job: Any, item: Any, *, where: str,
                 status_map: Mapping[str, DeliveryState],
                 keypress_fields: tuple[str, ...]) -> StatusUpdate:
    if not isinstance(item, Mapping):
        raise ValidationError(where, "must be an object")
    message_id = first_present(item, "message_id")
    if not isinstance(message_id, str | int) or not str(message_id).strip():
        raise ValidationError(f"{where}.message_id", "missing")
    status = first_present(item, "status")
    if not isinstance(status, str) or not status.strip():
        raise ValidationError(f"{where}.status", "missing")
    status = status.strip()
    answered = _epoch(first_present(item, "answer_date"))
    error_code = first_present(item, "error_code")
    error_text = first_present(item, "error_description")
    state = status_map.get(status.upper())
    if state is None:  # unknown vocabulary: judge by the facts the body carries
        if error_code not in (None, 0, "0", "", False):
            state = DeliveryState.FAILED
        elif answered is not None:
            state = DeliveryState.DELIVERED
        else:
            state = DeliveryState.SUBMITTED
    reason = None
    if state in (DeliveryState.FAILED, DeliveryState.EXPIRED):
        reason = str(error_text) if error_text not in (None, "", False) else status
    details: dict[str, Any] = {"api_job_id": job}
    if client_job not in (None, ""):
        details["client_job_id"] = str(client_job)
    for key, wire in (("ring_at", "ring_date"), ("answer_at", "answer_date"),
                      ("hang_at", "hang_date")):
        when = _epoch(first_present(item, wire))
        if when is not None:
            details[key] = when.isoformat()
    for key, wire in (("duration", "actual_duration"), ("billed_duration", "billed_duration")):
        seconds = _number(first_present(item, wire))
        if seconds is not None:
            details[key] = seconds
    for key, wire in (("error_code", "error_code"), ("error_description", "error_description"),
                      ("job_type", "job_type"), ("caller_id", "from"),
                      ("custom_id", "client_message_id")):
        value = first_present(item, wire)
        if value not in (None, "", False):
            details[key] = value
    keypress = first_present(item, *keypress_fields)
    if keypress not in (None, "", False):
        details["keypress"] = str(keypress)
    custom_id = first_present(item, "client_message_id")
    number = first_present(item, "to")
    return StatusUpdate(
        state=state,
        delivery_id=str(custom_id) if custom_id not in (None, "") else None,
        provider_ref=job,
        provider_message_id=message_key(job, message_id),
        number=f"+{number}" if isinstance(number, str | int) and str(number).isdigit() else None,
        provider_status=status,
        reason=reason,
        at=_callback_time(item),
        details=details,
    )


def message_key(job: Any, message_id: Any) -> str:
    """The id a call is matched by: its ``api_job_id`` and its ``message_id`` together.

    A postback is matched on both, so one naming a message of another job (stale, misrouted or
    forged with a guessed id) matches nothing instead of changing that other job's call.
    """
    return f"{job}:{message_id}"


def _epoch(value: Any) -> datetime | None:
    """Epoch seconds (``false`` when the event did not happen) as an aware datetime."""
    seconds = _number(value)
    if seconds is None or seconds <= 0:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return value
    try:
        number = float(str(value))
    except ValueError:
        return None
    return int(number) if number.is_integer() else number


def _callback_time(item: Mapping[str, Any]) -> datetime | None:
    """When the callback was sent: ``micro_timestamp`` (ms in the samples), else ``timestamp``."""
    seconds = _number(first_present(item, "timestamp"))
    fine = _number(first_present(item, "micro_timestamp"))
    if fine is not None and fine > 0:
        # The sample's "micro" value is in milliseconds; accept microseconds too, by magnitude.
        divisor = 1_000_000 if fine > 1e14 else 1000
        return datetime.fromtimestamp(fine / divisor, UTC)
    return _epoch(seconds)


def client_job_id(reference: str) -> str:
    """The ``job_id`` for an alert reference: as is if it has 7-15 safe characters, else hashed."""
    if _JOB_ID.fullmatch(reference):
        return reference
    return "al-" + hashlib.sha256(reference.encode()).hexdigest()[:12]


def sender_id(sender: str) -> str:
    """``sender`` as the 7-15 digits Fortytwo wants, or :class:`ValidationError` (-92)."""
    digits = re.sub(r"[\s()-]", "", sender).removeprefix("+")
    if digits.startswith("00"):
        digits = digits[2:]
    if not digits.isdigit() or not 7 <= len(digits) <= 15:
        raise ValidationError("sender", f"{sender!r}: Fortytwo's sender_id needs 7 to 15 digits "
                              "(code -92)")
    return digits


def check_audio_url(url: str) -> None:
    """:class:`ValidationError` unless ``url`` passes the seed's -111/-107 rules."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValidationError("audio_url", "must start with http:// or https:// (code -111)")
    if any(char.isspace() for char in url):
        raise ValidationError("audio_url", "must not contain spaces (code -107)")
    name = parts.path.rsplit("/", 1)[-1]
    if not _AUDIO_FILE.fullmatch(name):
        raise ValidationError("audio_url", f"file name {name!r}: only letters, digits, '-' and "
                              "'_', ending in .mp3 or .wav (code -107)")


def index_results(results: Any) -> tuple[dict[str, Mapping[str, Any]],
                                          dict[str, Mapping[str, Any]]]:
    """``results`` by destination digits and by custom_id (an object keyed by number; or a list)."""
    by_number: dict[str, Mapping[str, Any]] = {}
    by_custom: dict[str, Mapping[str, Any]] = {}
    if isinstance(results, Mapping):
        pairs = [(str(key), value) for key, value in results.items()]
    elif isinstance(results, list):
        pairs = [(str(first_present(value, "number", "destination", "to") or ""), value)
                 for value in results if isinstance(value, Mapping)]
    else:
        pairs = []
    for number, value in pairs:
        if not isinstance(value, Mapping):
            continue
        by_number[re.sub(r"\D", "", number)] = value
        custom = first_present(value, "custom_id")
        if custom is not None:
            by_custom[str(custom)] = value
    return by_number, by_custom
