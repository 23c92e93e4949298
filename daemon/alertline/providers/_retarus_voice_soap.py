"""zeep plumbing for Retarus Voice: WSDL loading (live or bundled), async transport, retries.

zeep builds and parses the SOAP envelopes; HTTP goes through :class:`SoapTransport`, which keeps
the shared httpx client untouched, never logs an envelope (it carries the password), limits the
answer size and maps HTTP and transport errors like ``_http.HttpApi``. :class:`SoapEndpoint`
retries 429, 5xx, connection errors and Server faults with the shared ``_http.with_retries``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

import httpx
import zeep
import zeep.exceptions
from lxml import etree
from requests import Response
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport
from zeep.wsdl.utils import etree_to_string

from ..clock import Clock
from ..errors import ProviderAnswerError, ProviderError, RejectedError
from ..redact import Redactor
from ._http import RetryPolicy, error_for_status, error_text, transport_error, with_retries
from ._retarus_voice_wire import BUNDLED_WSDL, OPERATIONS, fault_error

_LOGGER = logging.getLogger(__name__)

# zeep's hints are incomplete: its constructors are untyped
_ZeepClient: Any = zeep.AsyncClient
_ServiceProxy: Any = AsyncServiceProxy
_TransportError: Any = zeep.exceptions.TransportError
_to_string: Any = etree_to_string

_FAULT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?Fault[\s/>]")
_REQUIRED_OPERATIONS = frozenset(OPERATIONS.values())


def bundled_wsdl() -> bytes:
    """The WSDL shipped inside the package."""
    return (resources.files("alertline.providers") / "wsdl" / BUNDLED_WSDL).read_bytes()


class SoapTransport(AsyncTransport):
    """zeep's async transport over an injected httpx client, size-limited and quiet."""

    def __init__(self, provider: str, client: httpx.AsyncClient, *, timeout: float,
                 max_bytes: int, redactor: Redactor) -> None:
        # AsyncTransport.__init__ is deliberately not called: it replaces the client's headers,
        # which would change a client shared with the rest of the host.
        self._close_session = False
        self.cache = None
        self.load_timeout = timeout
        self.operation_timeout = timeout
        self.client = client
        self.wsdl_client = None
        self.logger = _LOGGER
        self.provider = provider
        self.max_bytes = max_bytes
        self.redactor = redactor

    def _too_big(self) -> ProviderAnswerError:
        return ProviderAnswerError(self.provider, f"answer larger than {self.max_bytes} bytes")

    def _load_remote_data(self, url: str) -> bytes:
        """GET a WSDL or XSD (blocking: only ever called from a worker thread)."""
        _LOGGER.debug("%s: loading %s", self.provider, self.redactor.text(url))
        with httpx.Client(timeout=self.load_timeout, follow_redirects=True) as client, \
                client.stream("GET", url) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > self.max_bytes:
                    raise self._too_big()
            if response.status_code >= 400:
                raise _TransportError(status_code=response.status_code)
            return bytes(body)

    async def post_xml(self, address: str, envelope: Any, headers: Mapping[str, str]) -> Any:
        """POST a SOAP envelope; returns what zeep parses, or raises a typed error."""
        message: bytes = _to_string(envelope)
        _LOGGER.debug("%s: POST %s (%d bytes)", self.provider, address, len(message))
        try:
            async with self.client.stream("POST", address, content=message, headers=dict(headers),
                                          timeout=self.operation_timeout) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise self._too_big()
        except httpx.HTTPError as err:
            raise transport_error(self.provider, err, self.redactor) from None
        _LOGGER.debug("%s: HTTP %d (%d bytes)", self.provider, response.status_code, len(body))
        if response.status_code != 200 and not _FAULT.search(body):
            answer = httpx.Response(response.status_code, headers=response.headers,
                                    content=bytes(body), request=response.request)
            raise error_for_status(self.provider, answer, _describe_text)
        if not _is_envelope(bytes(body)):
            raise ProviderAnswerError(self.provider, f"HTTP {response.status_code}: the answer "
                                      "is not a SOAP envelope")
        reply = Response()
        reply._content = bytes(body)
        reply.status_code = response.status_code
        reply.headers.update(response.headers)
        reply.encoding = response.encoding
        return reply


def _is_envelope(body: bytes) -> bool:
    """Whether ``body`` is well-formed XML with a SOAP Envelope root (no DTD, no entities).

    zeep parses with lxml's recover mode when ``strict=False`` (needed to tolerate unknown
    elements), which turns garbage into an empty tree; this strict check runs first.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError:
        return False
    return bool(root.getroottree().docinfo.doctype == ""
                and etree.QName(root).localname == "Envelope")


def _describe_text(response: httpx.Response) -> tuple[str | None, str | None]:
    """A short, tag-free excerpt of a non-SOAP error body."""
    text = re.sub(r"<[^>]+>", " ", response.text[:2000])
    text = " ".join(text.split())[:300]
    return None, text or None


class SoapEndpoint:
    """The Retarus Voice service: one zeep client, loaded once, and a retrying ``call``."""

    def __init__(self, provider: str, url: str, wsdl_url: str | None, *,
                 http: httpx.AsyncClient | None, redactor: Redactor, clock: Clock,
                 timeout: float, retry: RetryPolicy, max_bytes: int,
                 auth_pattern: str, duplicate_pattern: str) -> None:
        self.provider = provider
        self.url = url
        self.wsdl_url = wsdl_url
        self.redactor = redactor
        self.clock = clock
        self.retry = retry
        self.auth_pattern = auth_pattern
        self.duplicate_pattern = duplicate_pattern
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self.transport = SoapTransport(provider, self._http, timeout=timeout,
                                       max_bytes=max_bytes, redactor=redactor)
        self.settings = zeep.Settings(strict=False, forbid_dtd=True, forbid_entities=True)
        self.wsdl_source: str | None = None
        self._service: Any = None
        self._lock = asyncio.Lock()

    async def service(self) -> Any:
        """The zeep service proxy, loading the WSDL in a worker thread on first use."""
        async with self._lock:
            if self._service is None:
                self._service = await asyncio.to_thread(self._load)
        return self._service

    def _load(self) -> Any:
        """Build the zeep client from the live WSDL, or from the bundled one (blocking)."""
        if self.wsdl_url:
            try:
                return self._bind(_ZeepClient(self.wsdl_url, transport=self.transport,
                                                   settings=self.settings), "live")
            except (ProviderError, httpx.HTTPError, zeep.exceptions.Error, ValueError,
                    OSError, LookupError) as err:
                reason = error_text(err, self.redactor)[:300]
                _LOGGER.warning("%s: cannot use the WSDL at %s (%s); using the bundled copy",
                                self.provider, self.redactor.text(self.wsdl_url), reason)
        client = _ZeepClient(io.BytesIO(bundled_wsdl()), transport=self.transport,
                                  settings=self.settings)
        return self._bind(client, "bundled")

    def _bind(self, client: Any, source: str) -> Any:
        """A service proxy for the first binding that has every operation, at ``self.url``."""
        for binding in client.wsdl.bindings.values():
            if set(binding.all()) >= _REQUIRED_OPERATIONS:
                self.wsdl_source = source
                _LOGGER.debug("%s: using the %s WSDL", self.provider, source)
                # Client.create_service would build a sync proxy; this client is async
                return _ServiceProxy(client, binding, address=self.url)
        raise LookupError("no SOAP binding with " + ", ".join(sorted(_REQUIRED_OPERATIONS)))

    async def call(self, operation: str, *, idempotent: bool, **fields: Any) -> Any:
        """Call ``operation`` with ``fields``, retrying 429/5xx/Server faults with backoff."""
        service = await self.service()

        async def attempt(_number: int) -> Any:
            try:
                return await getattr(service, operation)(**fields)
            except zeep.exceptions.Fault as fault:
                raise fault_error(self.provider, fault.code,
                                  self.redactor.text(fault.message or ""), fault.detail,
                                  auth_pattern=self.auth_pattern,
                                  duplicate_pattern=self.duplicate_pattern) from None
            except (zeep.exceptions.ValidationError, TypeError) as err:
                raise RejectedError(self.provider, f"{operation}: request does not fit the "
                                    f"service's schema: {error_text(err, self.redactor)}") from None
            except (zeep.exceptions.Error, ValueError) as err:
                raise ProviderAnswerError(self.provider, f"{operation}: unreadable answer: "
                                          f"{error_text(err, self.redactor)[:300]}") from None

        return await with_retries(self.provider, attempt, retry=self.retry, clock=self.clock,
                                  redactor=self.redactor, idempotent=idempotent, what=operation)

    async def aclose(self) -> None:
        """Close the HTTP client if this endpoint created it."""
        if self._own_http:
            await self._http.aclose()
