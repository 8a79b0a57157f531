"""Capture sources: turn pcap/pcapng files (plain, or gzip, xz, bzip2, zstd or lz4 of one) or
standard input into Frames."""

from .capture import read_bytes, read_captures, read_record_bytes, read_records, records_of
from .frame import CaptureError, CaptureWarning, Frame

__all__ = ["CaptureError", "CaptureWarning", "Frame", "read_bytes", "read_captures",
           "read_record_bytes", "read_records", "records_of"]
