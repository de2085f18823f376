"""Handshake-era sessions (2025-03-26 .. 2025-11-25) checked on the wire with raw HTTP."""

from __future__ import annotations

import anyio
import pytest
import wire

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("version", ["2025-03-26", "2025-06-18", "2025-11-25"])
async def test_session_lifecycle(mcp_url: str, version: str) -> None:
    async with wire.client() as http:
        with anyio.fail_after(20):
            session = await wire.open_session(http, mcp_url, version)
            assert wire.session_id_entropy_ok(session.session_id), (
                f"Mcp-Session-Id {session.session_id!r} looks shorter than 128 bits "
                "(want 32+ hex digits or 22+ base64url characters)"
            )
            assert all(0x21 <= ord(c) <= 0x7E for c in session.session_id), "session id must be visible ASCII"

            listed = await wire.session_call(http, session, "tools/list", {})
            assert listed.status == 200, listed.describe()
            names = {tool["name"] for tool in listed.result["tools"]}
            assert {"echo", "add", "slow", "fail"} <= names, names

            echoed = await wire.session_call(http, session, "tools/call", {"name": "echo", "arguments": {"message": "hi"}})
            assert echoed.status == 200, echoed.describe()
            assert echoed.result["content"][0]["text"] == "hi", echoed.describe()

            deleted = await wire.close_session(http, session)
            assert 200 <= deleted.status_code < 300, f"DELETE session: HTTP {deleted.status_code} {deleted.text[:300]}"

            after = await wire.session_call(http, session, "tools/list", {})
            assert after.status == 404, f"request on a deleted session: {after.describe()}"


async def test_sessions_are_independent(mcp_url: str) -> None:
    """Two sessions get different ids; deleting one leaves the other working."""
    async with wire.client() as http:
        with anyio.fail_after(20):
            first = await wire.open_session(http, mcp_url, "2025-06-18")
            second = await wire.open_session(http, mcp_url, "2025-06-18")
            assert first.session_id != second.session_id
            deleted = await wire.close_session(http, first)
            assert 200 <= deleted.status_code < 300, deleted.status_code
            still = await wire.session_call(http, second, "tools/list", {})
            assert still.status == 200, still.describe()
            assert still.result["tools"], still.describe()
            await wire.close_session(http, second)
