"""WebSocket (RFC 6455) frames seen after a switch."""
