"""The service's transport: writes of one loop iteration leave as one, in order."""

from __future__ import annotations

import asyncio
from typing import cast

from comfy_serverless.api.server import CoalescedWrites


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def _coalesced(transport: RecordingTransport) -> CoalescedWrites:
    return CoalescedWrites(cast(asyncio.Transport, transport), asyncio.get_running_loop())


async def test_a_head_and_body_written_back_to_back_leave_in_one_write() -> None:
    transport = RecordingTransport()
    writes = _coalesced(transport)
    writes.write(b"HTTP/1.1 200 OK\r\n\r\n")
    writes.write(b"body")
    assert transport.writes == []
    await asyncio.sleep(0)
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    writes.write(b"next")
    await asyncio.sleep(0)
    assert transport.writes[1:] == [b"next"]


async def test_close_sends_what_is_pending_first_and_the_rest_is_the_transports() -> None:
    transport = RecordingTransport()
    writes = _coalesced(transport)
    writes.write(b"last answer")
    writes.close()
    assert (transport.writes, transport.closed) == ([b"last answer"], True)
    assert writes.get_extra_info("peername") == "info:peername"
    await asyncio.sleep(0)
    assert transport.writes == [b"last answer"], "nothing is written twice"
