"""A tiny MCP server over stdio for the Google ADK toolset tests: one tool, ``add_note``, whose side
effect is a line appended to the log file named by its first argument (fsynced).

Run: ``python adk_mcp_server.py <log file>``.
"""

from __future__ import annotations

import os
import sys

from mcp.server.fastmcp import FastMCP

LOG = sys.argv[1]
server = FastMCP("notes")


@server.tool()
def add_note(text: str) -> str:
    """Add a note."""
    with open(LOG, "a", encoding="utf-8") as log:
        log.write(f"{text}\n")
        log.flush()
        os.fsync(log.fileno())
    return f"noted {text}"


if __name__ == "__main__":
    server.run()
