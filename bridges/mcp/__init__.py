"""``brushlink mcp``: an MCP server over stdio, a bridge like the others.

An MCP client (Claude Desktop, an IDE's assistant) starts ``brushlink mcp`` and calls its tools;
each tool builds a ``Request``, runs it through the client core's ``HostRunner`` over the
websocket (against this machine's server, or a private in-process one, found the way the
command line finds one: ``server/inprocess.find_or_start``), saves the pictures and returns
them as MCP image content.

    cli.py      the command, its options, and the message when the MCP SDK is missing
    backend.py  reaching the server, running jobs, reading inputs and saving outputs
    tools.py    the MCP tools on the SDK's ``MCPServer``
"""
