"""zeep plumbing for Retarus Voice: WSDL loading (live or bundled), async transport, retries.

zeep builds and parses the SOAP envelopes; HTTP goes through :class:`SoapTransport`, which keeps
the shared httpx client untouched, never logs an envelope (it carries the password), limits the
answer size and maps HTTP and transport errors like ``_http.HttpApi``. It loads the WSDL and its
schemas only from the WSDL's own origin and follows no redirect elsewhere (a hostile WSDL must not
make the daemon fetch other URLs or read local files). :class:`SoapEndpoint` binds to the
operations the live WSDL names (either of the seed's spellings) in the namespace it declares, and
retries 429, 5xx, connection errors and Server faults with the shared ``_http.with_retries``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import zeep
import zeep.exceptions
from lxml import etree
from requests import Response
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport
from zeep.wsdl.utils import etree_to_string

from alertline.clock import Clock
from alertline.errors import ProviderAnswerError, ProviderError, RejectedError, TransientError
from alertline.providers._http import (
    DEADLINE_FACTOR,
    RetryPolicy,
    error_for_status,
    error_text,
    transport_error,
    with_retries,
)
from alertline.providers.retarus.voice_faults import fault_error
from alertline.providers.retarus.voice_wire import BUNDLED_WSDL, OPERATIONS, PLACEHOLDER_NAMESPACE
from alertline.redact import Redactor

_LOGGER = logging.getLogger(__name__)

# zeep's hints are incomplete: its constructors are untyped
_ZeepClient: Any = zeep.AsyncClient
_ServiceProxy: Any = AsyncServiceProxy
_TransportError: Any = zeep.exceptions.TransportError
_to_string: Any = etree_to_string

_FAULT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?Fault[\s/>]")
_MAX_REDIRECTS = 3
_BY_STATUS = frozenset({429, 502, 503, 504})


def bundled_wsdl(namespace: str, names: Mapping[str, str] | None = None) -> bytes:
    """The WSDL shipped inside the package, in ``namespace``, with the operations spelled as
    ``names`` (our operation → the service's name; default: the seed's methods table)."""
    wsdl = resources.files("alertline.providers.retarus") / "wsdl" / BUNDLED_WSDL
    text = wsdl.read_text("utf-8")
    text = text.replace(PLACEHOLDER_NAMESPACE, namespace)
    for key, spelling in (names or {}).items():
        text = text.replace(OPERATIONS[key][0], spelling)
    return text.encode("utf-8")


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of ``url``: what "the same host" means for WSDL loading."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port


class SoapTransport(AsyncTransport):
    """zeep's async transport over an injected httpx client, size-limited and quiet."""

    def __init__(self, provider: str, client: httpx.AsyncClient, *, timeout: float,
                 max_bytes: int, redactor: Redactor, wsdl_url: str | None = None) -> None:
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
        self.wsdl_url = wsdl_url
        remote = wsdl_url is not None and origin(wsdl_url)[0] in ("http", "https")
        self._wsdl_file = (os.path.abspath(os.path.expanduser(wsdl_url))
                           if wsdl_url is not None and not remote else None)

    def _too_big(self) -> ProviderAnswerError:
        return ProviderAnswerError(self.provider, f"answer larger than {self.max_bytes} bytes")

    def _foreign(self, url: str) -> ProviderAnswerError:
        return ProviderAnswerError(self.provider, f"the WSDL refers to {self.redactor.text(url)}; "
                                   "only its own host is trusted, nothing was fetched there")

    def _trusted(self, url: str) -> bool:
        """Whether ``url`` is on the configured WSDL's own origin, over HTTP(S)."""
        return (self.wsdl_url is not None and origin(url)[0] in ("http", "https")
                and origin(url) == origin(self.wsdl_url))

    def load(self, url: str) -> bytes:
        """The configured WSDL, or a schema it imports from the same origin (zeep would follow
        any URL a WSDL names, and read local files for anything that is not a URL)."""
        if not url:
            raise ValueError("No url given to load")
        if self._trusted(url):
            return self._load_remote_data(url)
        if self._wsdl_file is not None and os.path.abspath(url) == self._wsdl_file:
            with open(self._wsdl_file, "rb") as handle:  # wsdl_url names a local file
                data = handle.read(self.max_bytes + 1)
            if len(data) > self.max_bytes:
                raise self._too_big()
            return data
        raise self._foreign(url)

    def _load_remote_data(self, url: str) -> bytes:
        """GET a WSDL or XSD (blocking: only ever called from a worker thread); redirects are
        followed only within the same origin."""
        _LOGGER.debug("%s: loading %s", self.provider, self.redactor.text(url))
        with httpx.Client(timeout=self.load_timeout, follow_redirects=False) as client:
            for _hop in range(_MAX_REDIRECTS + 1):
                with client.stream("GET", url) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("location", ""))
                        if not self._trusted(url):
                            raise self._foreign(url)
                        continue
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > self.max_bytes:
                            raise self._too_big()
                    if response.status_code >= 400:
                        raise _TransportError(f"HTTP {response.status_code} for the WSDL",
                                              status_code=response.status_code)
                    return bytes(body)
        raise ProviderAnswerError(self.provider, f"more than {_MAX_REDIRECTS} redirects")

    async def post_xml(self, address: str, envelope: Any, headers: Mapping[str, str]) -> Any:
        """POST a SOAP envelope; returns what zeep parses, or raises a typed error."""
        message: bytes = _to_string(envelope)
        _LOGGER.debug("%s: POST %s (%d bytes)", self.provider, address, len(message))
        deadline = self.operation_timeout * DEADLINE_FACTOR
        try:
            async with asyncio.timeout(deadline), self.client.stream(
                    "POST", address, content=message, headers=dict(headers),
                    timeout=self.operation_timeout) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise self._too_big()
        except TimeoutError:  # a trickling answer: the request slot is freed all the same
            raise TransientError(self.provider, f"timed out: no complete answer within "
                                 f"{deadline:g}s") from None
        except httpx.HTTPError as err:
            raise transport_error(self.provider, err, self.redactor) from None
        except OSError as err:  # e.g. a reset below httpx's own mapping
            raise TransientError(self.provider, "connection failed: "
                                 f"{self.redactor.text(str(err) or type(err).__name__)}") from None
        _LOGGER.debug("%s: HTTP %d (%d bytes)", self.provider, response.status_code, len(body))
        # a rate limit or an overloaded gateway stays one even when it carries a SOAP fault
        # (a Client fault there would otherwise read as a refusal and end the alert)
        if response.status_code in _BY_STATUS or (response.status_code != 200
                                                  and not _FAULT.search(body)):
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
    """The Retarus Voice service: one zeep client, loaded once, and a retrying ``call``.

    ``namespace`` is the service's target namespace for the bundled WSDL: without it the bundled
    copy is never used (its own namespace is a placeholder the real service would refuse), and a
    live WSDL that cannot be loaded is a transient error, tried again on the next call.
    """

    def __init__(self, provider: str, url: str, wsdl_url: str | None, *,
                 http: httpx.AsyncClient | None, redactor: Redactor, clock: Clock,
                 timeout: float, retry: RetryPolicy, max_bytes: int,
                 auth_pattern: str, duplicate_pattern: str, namespace: str | None = None,
                 bundled_names: Mapping[str, str] | None = None) -> None:
        self.provider = provider
        self.url = url
        self.wsdl_url = wsdl_url
        self.namespace = namespace
        self.bundled_names = dict(bundled_names or {})
        self.redactor = redactor
        self.clock = clock
        self.retry = retry
        self.auth_pattern = auth_pattern
        self.duplicate_pattern = duplicate_pattern
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self.transport = SoapTransport(provider, self._http, timeout=timeout,
                                       max_bytes=max_bytes, redactor=redactor, wsdl_url=wsdl_url)
        # forbid_external would also refuse the service's own ?xsd= imports: the transport's
        # load() keeps them to the WSDL's origin instead
        self.settings = zeep.Settings(strict=False, forbid_dtd=True, forbid_entities=True,
                                      xml_huge_tree=False)
        self.wsdl_source: str | None = None
        self.operations: dict[str, str] = {}  # our operation -> the bound WSDL's name
        self.bound_namespace: str | None = None
        self._waiting = False  # the live WSDL failed and calls wait for it
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
                where = self.redactor.text(self.wsdl_url)
                if self.namespace is None:
                    # one warning per outage, not one per call while the WSDL stays away
                    log = _LOGGER.debug if self._waiting else _LOGGER.warning
                    self._waiting = True
                    log("%s: cannot use the WSDL at %s (%s); no wsdl_namespace is configured "
                        "for the bundled copy, so calls wait for it", self.provider, where, reason)
                    raise TransientError(self.provider, "the service's WSDL cannot be loaded: "
                                         f"{reason}") from None
                _LOGGER.warning("%s: cannot use the WSDL at %s (%s); using the bundled copy "
                                "in namespace %s", self.provider, where, reason, self.namespace)
        if self.namespace is None:
            raise RejectedError(self.provider, "the bundled WSDL needs wsdl_namespace")
        client = _ZeepClient(io.BytesIO(bundled_wsdl(self.namespace, self.bundled_names)),
                             transport=self.transport, settings=self.settings)
        return self._bind(client, "bundled")

    def _bind(self, client: Any, source: str) -> Any:
        """A service proxy at ``self.url`` for the first binding that has every operation, in
        either of the seed's spellings."""
        for binding in client.wsdl.bindings.values():
            available = set(binding.all())
            names = {key: next((n for n in spellings if n in available), None)
                     for key, spellings in OPERATIONS.items()}
            if all(names.values()):
                self.operations = {key: str(name) for key, name in names.items()}
                self.bound_namespace = binding.port_type.name.namespace
                self.wsdl_source = source
                (_LOGGER.info if self._waiting else _LOGGER.debug)(
                    "%s: using the %s WSDL (%s)", self.provider, source,
                    ", ".join(self.operations.values()))
                self._waiting = False
                # Client.create_service would build a sync proxy; this client is async
                return _ServiceProxy(client, binding, address=self.url)
        raise LookupError("no SOAP binding with " + ", ".join(
            " or ".join(spellings) for spellings in OPERATIONS.values()))

    async def call(self, key: str, *, idempotent: bool, **fields: Any) -> Any:
        """Call our operation ``key`` (see ``OPERATIONS``) with ``fields``, by the name the bound
        WSDL gives it, retrying 429/5xx/Server faults with backoff."""
        service = await self.service()
        operation = self.operations[key]

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
