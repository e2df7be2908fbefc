"""Built-in plugins of core: sinks (stdout, file, webhook, console) and analyzers (summary, arbitrage).

They are registered exactly like external plugins: one entry point per built-in in group
``aggcore`` of the ``aggcore`` distribution (see ``core/pyproject.toml``), each pointing to
a tiny ``*_plugin`` module here whose hook implementation imports its class lazily, so a
broken built-in shows up as that plugin's load error and everything else still loads.
"""
