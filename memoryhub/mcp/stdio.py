"""`memoryhub-mcp`: the stdio MCP server (memoryhub.client.mcp), or, without the mcp extra, how to
install it instead of a traceback."""

from __future__ import annotations

import sys

INSTALL = "memoryhub-mcp needs the mcp extra (mcp>=2.3): pip install 'memoryhub[mcp]'\n"


def main() -> None:
    try:
        from memoryhub.client.mcp import main as serve
    except ImportError as error:
        if (error.name or "").split(".")[0] != "mcp":
            raise
        sys.stderr.write(INSTALL)
        raise SystemExit(2) from None
    serve()


if __name__ == "__main__":
    main()
