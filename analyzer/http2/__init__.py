"""HTTP/2 (RFC 9113) as an observer reads it: both directions' bytes in, frame events out."""

from __future__ import annotations

from analyzer.http2.events import ErrorCode, Setting, error_name, setting_name
from analyzer.http2.reader import H2Reader

__all__ = ["ErrorCode", "H2Reader", "Setting", "error_name", "setting_name"]
