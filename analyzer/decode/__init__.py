"""Link, IP and TCP decoding: turn Frames into TCP Segments (tunnels unwrapped)."""

from .decoder import MAX_TUNNELS, Decoder
from .segment import Segment, TcpFlags

__all__ = ["MAX_TUNNELS", "Decoder", "Segment", "TcpFlags"]
