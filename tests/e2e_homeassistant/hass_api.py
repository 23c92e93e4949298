"""Home Assistant's REST and websocket APIs, as the frontend uses them (owner token)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

CLIENT_ID = "http://127.0.0.1/"
TIMEOUT = aiohttp.ClientTimeout(total=120)


class ApiError(AssertionError):
    """Home Assistant answered with an error status or message."""


async def onboard_owner(session: aiohttp.ClientSession, base: str) -> str:
    """Create the owner user through onboarding and return an access token for it."""
    async with session.post(f"{base}/api/onboarding/users", json={
            "client_id": CLIENT_ID, "name": "Owner", "username": "owner",
            "password": "e2e-owner-password", "language": "en"}) as response:
        if response.status != 200:
            raise ApiError(f"onboarding: {response.status} {await response.text()}")
        auth_code = (await response.json())["auth_code"]
    async with session.post(f"{base}/auth/token", data={
            "grant_type": "authorization_code", "code": auth_code,
            "client_id": CLIENT_ID}) as response:
        if response.status != 200:
            raise ApiError(f"token: {response.status} {await response.text()}")
        token: str = (await response.json())["access_token"]
    return token


class RestClient:
    """Authenticated REST calls that fail loudly on any non-2xx answer."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self._session = session
        self._base = base
        self._headers = {"Authorization": f"Bearer {token}"}

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """JSON in, JSON out."""
        async with self._session.request(method, self._base + path, json=body,
                                         headers=self._headers) as response:
            if response.status >= 300:
                raise ApiError(f"{method} {path}: {response.status} {await response.text()}")
            return await response.json(content_type=None)

    async def post(self, path: str, body: Any = None) -> Any:
        """POST ``body`` as JSON."""
        return await self.request("POST", path, body)

    async def get(self, path: str) -> Any:
        """GET."""
        return await self.request("GET", path)


class WebSocketClient:
    """One authenticated websocket: commands by id, and queues of subscribed events."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._ids = itertools.count(1)
        self._results: dict[int, asyncio.Future[Any]] = {}
        self._events: dict[int, asyncio.Queue[Any]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = message.json()
            if data.get("type") == "event":
                self._events[data["id"]].put_nowait(data["event"])
            elif data.get("type") == "result":
                future = self._results.pop(data["id"])
                if data["success"]:
                    future.set_result(data.get("result"))
                else:
                    future.set_exception(ApiError(str(data.get("error"))))
        for future in self._results.values():
            future.set_exception(ApiError("websocket closed"))

    async def command(self, payload: dict[str, Any], within: float = 60) -> Any:
        """Send one command and return its result."""
        message_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._results[message_id] = future
        await self._socket.send_json({"id": message_id, **payload})
        return await asyncio.wait_for(future, within)

    async def subscribe(self, payload: dict[str, Any]) -> asyncio.Queue[Any]:
        """Send a subscription command; its events arrive in the returned queue."""
        message_id = next(self._ids)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._events[message_id] = queue
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._results[message_id] = future
        await self._socket.send_json({"id": message_id, **payload})
        await asyncio.wait_for(future, 30)
        return queue

    async def subscribe_events(self, event_type: str) -> asyncio.Queue[Any]:
        """A queue that receives every ``event_type`` event from now on."""
        return await self.subscribe({"type": "subscribe_events", "event_type": event_type})

    async def close(self) -> None:
        """Close the socket and stop reading."""
        await self._socket.close()
        await asyncio.wait_for(self._reader, 10)


@asynccontextmanager
async def websocket(session: aiohttp.ClientSession, base: str,
                    token: str) -> AsyncIterator[WebSocketClient]:
    """An authenticated websocket for the block."""
    socket = await session.ws_connect(f"{base}/api/websocket", timeout=aiohttp.ClientWSTimeout(
        ws_close=10))
    try:
        hello = await socket.receive_json(timeout=30)
        assert hello["type"] == "auth_required", hello
        await socket.send_json({"type": "auth", "access_token": token})
        answer = await socket.receive_json(timeout=30)
        if answer["type"] != "auth_ok":
            raise ApiError(f"websocket auth: {answer}")
        client = WebSocketClient(socket)
        try:
            yield client
        finally:
            await client.close()
    finally:
        await socket.close()
