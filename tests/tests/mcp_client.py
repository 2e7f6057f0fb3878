"""previewd's MCP tools through the official MCP Python SDK (PyPI `mcp`), as an agent's host
would call them: in the handshake protocol version ("legacy": initialize) and the current one
("auto": discovery). Lists the tools, calls each one, and checks a forbidden call's and a
conflicting call's error codes. Prints one JSON line the cargo test (`mcp.rs`) reads.

Usage: mcp_client.py URL WRITER_TOKEN READER_TOKEN RUNNING_NAMESPACE FAILED_NAMESPACE
"""

import asyncio
import json
import sys

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def transport(url, token):
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    return streamable_http_client(url, http_client=http)


def code(result):
    """The shared code of a tool error, or None when the call worked."""
    if not result.is_error:
        return None
    return (result.structured_content or {}).get("code")


async def session(mode, url, writer, reader, running, failed):
    report = {}
    async with Client(transport(url, writer), mode=mode) as client:
        report["version"] = client.protocol_version
        tools = (await client.list_tools()).tools
        report["tools"] = sorted(t.name for t in tools)
        assert all(t.output_schema for t in tools), "every tool has an output schema"
        me = await client.call_tool("whoami", {})
        report["whoami"] = me.structured_content["login"]
        listed = await client.call_tool("list_preview_environments", {"status": "running"})
        namespaces = [p["namespace"] for p in listed.structured_content["items"]]
        assert running in namespaces, namespaces
        one = await client.call_tool("get_preview_environment", {"preview": failed})
        assert one.structured_content["status"] == "failed", one
        logs = await client.call_tool("get_preview_logs", {"preview": failed, "tail": 20})
        assert not logs.is_error, logs
        assert logs.structured_content["notice"].startswith("Untrusted"), logs
        report["conflict"] = code(
            await client.call_tool("retry_preview_deployment", {"preview": running})
        )
        wrong = await client.call_tool(
            "delete_preview_environment", {"preview": running, "confirm_namespace": "no"}
        )
        assert code(wrong) == "INVALID_INPUT", wrong
    async with Client(transport(url, reader), mode=mode) as client:
        report["forbidden"] = code(
            await client.call_tool(
                "delete_preview_environment",
                {"preview": running, "confirm_namespace": running},
            )
        )
    return report


async def main():
    url, writer, reader, running, failed = sys.argv[1:6]
    out = {}
    for mode in ("legacy", "auto"):
        out[mode] = await session(mode, url, writer, reader, running, failed)
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(), timeout=120))
