"""Built-in sinks: stdout, file, webhook, console."""
