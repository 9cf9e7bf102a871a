"""The SMPP protocol layer: codec, text, time format, sans-IO session. No store, no sockets."""
