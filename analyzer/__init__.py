"""upgrade-analyzer: tells why an HTTP Upgrade handshake failed, from a packet capture alone."""

__version__ = "0.1.0"
