"""memoryhub as the store of the frameworks agents are built with, each a thin layer over
`memoryhub.client` and importable without Django (each needs its own extra):

- `memoryhub.integrations.langgraph`: `HubStore` / `AsyncHubStore` (LangGraph's `BaseStore`)
- `memoryhub.integrations.crewai`: `HubStorage` (CrewAI `Memory(storage=...)`) and `HubLockBackend`
- `memoryhub.integrations.openai_agents`: `HubSession` (the OpenAI Agents SDK's `Session`)
- `memoryhub.integrations.autogen`: `HubMemory` (`autogen_core.memory.Memory`)

The MCP server the hub serves itself at /mcp/ is `memoryhub.mcp`."""
