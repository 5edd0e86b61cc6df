"""Interop: Python's `websockets` (PyPI) against a tower-push WebSocket endpoint.

Usage: python3 websockets_client.py ws://127.0.0.1:PORT/events
The endpoint publishes each inbound text message to the room as an event named `message`.
"""
import asyncio
import json
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


def check(condition: bool, what: object) -> None:
    """An assertion that `python3 -O` cannot skip."""
    if not condition:
        raise SystemExit(f"interop check failed: {what!r}")


async def main(url: str) -> None:
    async with connect(url) as ws:
        position = json.loads(await ws.recv())
        check("id" in position and "data" not in position, position)
        await ws.send("hello from python")
        event = json.loads(await ws.recv())
        check(event["event"] == "message" and event["data"] == "hello from python", event)
        first_id = event["id"]
        pong = await ws.ping(b"ping from python")
        await asyncio.wait_for(pong, 5)
        await ws.send("second")
        event = json.loads(await ws.recv())
        check(event["data"] == "second", event)
    check(ws.close_code == 1000, ws.close_code)

    # Resume with the cursor: the position, then exactly what came after it.
    async with connect(f"{url}?lastEventId={first_id}") as ws:
        position = json.loads(await ws.recv())
        check(position["id"] == first_id, position)
        event = json.loads(await ws.recv())
        check(event["data"] == "second", event)

    # Over the 64 KiB limit: closed with 1009.
    async with connect(url, max_size=None) as ws:
        await ws.recv()
        await ws.send("x" * (100 * 1024))
        closed = None
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        except ConnectionClosed as e:
            closed = e
        check(closed is not None and closed.rcvd is not None and closed.rcvd.code == 1009, closed)
    print("websockets interop ok")


asyncio.run(main(sys.argv[1]))
