"""MCP served by the hub itself at /mcp/ (Streamable HTTP), authenticated by the agent's token.

An adapter like the REST views: each tool authenticates the caller's token, validates its arguments
with the REST API's own input serializers and calls the same services and selectors, so every policy,
error code and event is the REST API's. `memoryhub.mcp.asgi.with_mcp` mounts it in memoryhub.asgi;
the tools are in `memoryhub.mcp.tools`. Needs the `mcp` extra; without it /mcp/ answers 501 saying so.
(The stdio server for MCP hosts that start a process, `memoryhub-mcp`, is memoryhub.client.mcp: it
calls the REST API through the client.)"""
