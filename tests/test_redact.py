"""Secrets stay out of text, data and log lines (plain and JSON, tracebacks included)."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from html import escape
from urllib.parse import quote, quote_plus
from xml.sax.saxutils import escape as xml_escape

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertline.logs import JsonFormatter, RedactingFormatter, configure_logging
from alertline.redact import MASK, Redactor, redact_mapping, redact_text

SECRET = "s3cr3t-Pa55word"


def test_known_secrets_are_masked_everywhere_in_text() -> None:
    redactor = Redactor([SECRET])
    text = f"login failed for acme/{SECRET}; retry with {SECRET}!"
    assert redactor.text(text) == f"login failed for acme/{MASK}; retry with {MASK}!"


def test_longer_secrets_are_masked_first() -> None:
    redactor = Redactor(["abc123", "abc123-long-secret"])
    assert redactor.text("key=abc123-long-secret") == f"key={MASK}"


def test_short_and_empty_values_are_not_secrets() -> None:
    redactor = Redactor(["", "ab", None])  # type: ignore[list-item]
    assert redactor.text("ab ab") == "ab ab"


def test_secrets_added_later_are_masked() -> None:
    redactor = Redactor()
    redactor.add(SECRET)
    assert SECRET not in redactor.text(f"x {SECRET} y")


@pytest.mark.parametrize(("text", "expected"), [
    ("https://acme:pa55@sms.example.com/rest", f"https://acme:{MASK}@sms.example.com/rest"),
    ("GET /send?user=acme&password=pa55&to=49", f"GET /send?user=acme&password={MASK}&to=49"),
    ("?token=abc&x=1 and api_key=zzz", f"?token={MASK}&x=1 and api_key={MASK}"),
    ("Authorization: Basic YWNtZTpwYTU1d29yZA==", f"Authorization: Basic {MASK}"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30", f"Authorization: Bearer {MASK}"),
    ("Authorization: Token 0123456789abcdef", f"Authorization: Token {MASK}"),
    ("an ordinary sentence about tokens", "an ordinary sentence about tokens"),
])
def test_secret_looking_patterns_are_masked(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_data_is_masked_by_key_and_by_value() -> None:
    redactor = Redactor([SECRET])
    data = {"user": "acme", "Password": "anything", "nested": [{"token": "t0k3n-xyz"},
                                                                f"uses {SECRET}"],
            "count": 3, "api_key": ""}
    assert redactor.data(data) == {"user": "acme", "Password": MASK,
                                   "nested": [{"token": MASK}, f"uses {MASK}"], "count": 3,
                                   "api_key": ""}
    assert data["Password"] == "anything", "the original is left alone"


def test_redact_mapping_masks_secret_keys() -> None:
    assert redact_mapping({"mqtt": {"password": "p", "host": "h"}}) == {
        "mqtt": {"password": MASK, "host": "h"}}


@given(st.text(min_size=3, max_size=30).filter(lambda s: s.strip() == s and s != ""),
       st.text(max_size=30), st.text(max_size=30))
def test_a_known_secret_never_survives(secret: str, before: str, after: str) -> None:
    assert secret not in Redactor([secret]).text(before + secret + after) or \
        secret in MASK


# -- log lines ---------------------------------------------------------------------------------


@pytest.fixture
def captured_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(logging.Formatter("%(levelname)s %(message)s"),
                                            Redactor([SECRET])))
    logger = logging.getLogger("tests.redact")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, stream
    logger.removeHandler(handler)
    logger.propagate = True


def test_log_lines_and_tracebacks_are_redacted(
        captured_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured_log
    logger.info("connecting to https://acme:%s@host/ with %s", SECRET, SECRET)
    try:
        raise RuntimeError(f"auth failed: {SECRET}")
    except RuntimeError:
        logger.exception("submit crashed")
    output = stream.getvalue()
    assert SECRET not in output
    assert output.count(MASK) >= 3
    assert "RuntimeError: auth failed: " + MASK in output


def test_json_log_lines_are_redacted() -> None:
    formatter = RedactingFormatter(JsonFormatter(), Redactor([SECRET]))
    record = logging.LogRecord("alertline.x", logging.WARNING, __file__, 1,
                               "password is %s", (SECRET,), None)
    line = json.loads(formatter.format(record))
    assert line["message"] == f"password is {MASK}"
    assert (line["level"], line["logger"]) == ("WARNING", "alertline.x")


def test_configure_logging_redacts_the_configured_secrets(
        capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("info", as_json=True, secrets=[SECRET])
        logging.getLogger("alertline.test").info("token %s", SECRET)
        logging.getLogger("alertline.test").debug("not shown at info")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["message"] for line in lines] == [f"token {MASK}"]


# -- escaped forms -----------------------------------------------------------------------------

AWKWARD = ['p&ss"w/rd<1>', "with spaces and 'quotes'", "pässwört-Ünïcode", "back\\slash/tab\t",
           "日本語の秘密"]


def _escaped(secret: str) -> dict[str, str]:
    return {"url": quote(secret, safe=""), "path": quote(secret), "form": quote_plus(secret),
            "url_lower_hex": re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(),
                                    quote(secret, safe="")),
            "json": json.dumps(secret)[1:-1],
            "json_utf8": json.dumps(secret, ensure_ascii=False)[1:-1],
            "json_slash": json.dumps(secret)[1:-1].replace("/", "\\/"),
            "xml_text": xml_escape(secret),
            "xml_attr": xml_escape(secret, {'"': "&quot;", "'": "&apos;"}),
            "html": escape(secret)}


@pytest.mark.parametrize("secret", AWKWARD)
def test_url_json_and_xml_escaped_forms_of_a_secret_are_masked(secret: str) -> None:
    redactor = Redactor([secret])
    for name, form in _escaped(secret).items():
        masked = redactor.text(f"<password>{form}</password> and ?p={form}&x=1")
        assert form not in masked, f"{name} form survived: {masked}"


@pytest.mark.parametrize("secret", AWKWARD)
def test_json_log_lines_mask_secrets_that_json_escaping_would_hide(
        secret: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("info", as_json=True, secrets=[secret])
        logging.getLogger("alertline.test").warning("login with %s refused", secret)
        try:
            raise RuntimeError(f"auth {secret}")
        except RuntimeError:
            logging.getLogger("alertline.test").exception("submit crashed")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    output = capsys.readouterr().err
    for form in (secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]):
        assert form not in output
    lines = [json.loads(line) for line in output.splitlines()]
    assert lines[0]["message"] == f"login with {MASK} refused"
    assert lines[1]["exception"].endswith(f"RuntimeError: auth {MASK}")
