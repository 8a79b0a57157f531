"""Live capture: Linux packet sockets on one or more interfaces, read as raw Frames.

This is the only module that touches scapy. scapy opens the sockets and compiles the BPF filter
(through libpcap); we never build scapy packets: each read gives bytes and a kernel timestamp.
"""

# How it works: every interface gets one packet socket, in one of two modes.
# - Ethernet and loopback interfaces: scapy's L2ListenSocket (SOCK_RAW, the filter attached in
#   the kernel), frames as LINKTYPE_ETHERNET. scapy's raw receive puts back the 802.1Q tag the
#   kernel strips, and reads the SO_TIMESTAMPNS timestamp.
# - `any` and interfaces without an Ethernet header (tun, PPP, ...): a SOCK_DGRAM socket, which
#   gives the network-layer packet plus its sockaddr_ll. We prepend a Linux cooked (SLL) header
#   from that sockaddr, as libpcap does, so frames are LINKTYPE_LINUX_SLL. The filter is compiled
#   for raw IP, because a SOCK_DGRAM socket's filter sees the packet from the IP header on.
# On loopback every packet passes the socket twice (outgoing, then incoming); like libpcap we
# keep only the incoming copy. `poll` waits on all sockets with select() and a short timeout, so
# the caller gets control back regularly to decide attempts by timeout.

from __future__ import annotations

import contextlib
import logging
import re
import select
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .frame import CaptureError, Frame

ANY = "any"

LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
_DLT_RAW = 12  # libpcap's DLT_RAW on Linux: what a SOCK_DGRAM socket's filter sees

_ETH_P_ALL = 0x0003
_SOL_PACKET = 263
_PACKET_STATISTICS = 6
_PACKET_OUTGOING = 4
_ARPHRD_ETHER = 1
_ARPHRD_LOOPBACK = 772
_SO_TIMESTAMPNS = 35

# Largest frame we read: loopback's MTU (65536) plus an Ethernet header, with room to spare.
SNAPLEN = 65600
# Kernel receive buffer per socket: bursts wait here while we analyse (scapy's default is 64 KiB).
RECEIVE_BUFFER = 8 << 20
# At most this many packets per socket per poll, so one busy interface cannot starve the others.
_BATCH = 1024

_SLL = struct.Struct("!HHH8sH")  # packet type, ARPHRD type, address length, address, protocol
_TPACKET_STATS = struct.Struct("II")  # tp_packets (including drops), tp_drops
_TIMESPEC = struct.Struct("qq")


@dataclass(frozen=True, slots=True)
class Interface:
    """One capture interface; its position in `LiveCapture.interfaces` is `Frame.source`."""

    name: str
    linktype: int


@dataclass(frozen=True, slots=True)
class CaptureCounters:
    """The capture sockets' packet counts: read and dropped."""
    received: int  # packets we read from the sockets
    dropped: int  # packets the kernel dropped because we did not read fast enough


class _Tap:
    """One packet socket and how to turn what it reads into frame bytes."""

    def __init__(self, index: int, name: str, sock: socket.socket, cooked: bool,
                 scapy_socket: Any = None) -> None:
        self.index = index
        self.name = name
        self.sock = sock
        self.cooked = cooked
        self.scapy_socket = scapy_socket  # keeps scapy's object (and its socket) alive
        self.dropped = 0

    def read(self) -> tuple[bytes, float] | None:
        """One packet as (frame bytes, time), or None for a packet we skip (loopback echo)."""
        if self.cooked:
            data, ancillary, _flags, address = self.sock.recvmsg(SNAPLEN, 64)
            stamp = _timestamp(ancillary)
        else:
            # scapy's raw receive: bytes, sockaddr_ll and timestamp, VLAN tag restored.
            data, address, stamp = self.scapy_socket._recv_raw(self.sock, SNAPLEN)
        _ifname, protocol, packet_type, hatype, hwaddr = address
        if packet_type == _PACKET_OUTGOING and hatype == _ARPHRD_LOOPBACK:
            return None
        if self.cooked:
            data = _SLL.pack(packet_type, hatype, len(hwaddr), hwaddr[:8], protocol) + data
        return data, stamp if stamp is not None else time.time()

    def drops(self) -> int:
        """Kernel drops so far. Reading PACKET_STATISTICS resets it, so we add up."""
        with contextlib.suppress(OSError):
            raw = self.sock.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, _TPACKET_STATS.size)
            self.dropped += _TPACKET_STATS.unpack(raw)[1]
        return self.dropped

    def close(self) -> None:
        if self.scapy_socket is not None:
            self.scapy_socket.close()
        else:
            self.sock.close()


class LiveCapture:
    """Packet sockets on the given interfaces (``any`` = all), filtered in the kernel.

    Opening raises CaptureError with a one-line message when an interface does not exist, the
    filter does not compile, or capturing is not permitted.
    """

    def __init__(self, interfaces: Sequence[str], bpf: str | None = None) -> None:
        names = list(dict.fromkeys(interfaces))
        _check_names(names)
        self.interfaces: list[Interface] = []
        self._taps: list[_Tap] = []
        self._number = 0
        self.received = 0
        try:
            for index, name in enumerate(names):
                cooked = name == ANY or _arphrd(name) not in (_ARPHRD_ETHER, _ARPHRD_LOOPBACK)
                # Compiled here first so that a bad filter is reported before any socket opens.
                program = _compile(bpf, _DLT_RAW if cooked else LINKTYPE_ETHERNET)
                if cooked:
                    tap = _open_cooked(index, name, program)
                else:
                    _free(program)  # scapy compiles it again for the socket
                    tap = _open_l2(index, name, bpf)
                self._taps.append(tap)
                self.interfaces.append(
                    Interface(name, LINKTYPE_LINUX_SLL if cooked else LINKTYPE_ETHERNET))
        except BaseException:
            self.close()
            raise
        self._by_fd = {tap.sock.fileno(): tap for tap in self._taps}

    def poll(self, timeout: float) -> list[Frame]:
        """The packets that arrive within `timeout` seconds (an empty list when none did)."""
        try:
            ready, _, _ = select.select(list(self._by_fd), [], [], max(timeout, 0.0))
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for safety
            return []
        frames: list[Frame] = []
        for fd in ready:
            tap = self._by_fd[fd]
            for _ in range(_BATCH):
                try:
                    packet = tap.read()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as error:
                    raise CaptureError(f"capture on {tap.name} failed: {error.strerror or error}"
                                       ) from None
                if packet is None:
                    continue
                data, stamp = packet
                self._number += 1
                frames.append(Frame(self._number, stamp, self.interfaces[tap.index].linktype,
                                    data, len(data), tap.index))
        self.received += len(frames)
        if len(ready) > 1:
            frames.sort(key=lambda f: f.time)  # interleave interfaces by time, numbers follow
            frames = [Frame(n, f.time, f.linktype, f.data, f.wire_length, f.source)
                      for n, f in enumerate(frames, start=self._number - len(frames) + 1)]
        return frames

    def counters(self) -> CaptureCounters:
        return CaptureCounters(self.received, sum(tap.drops() for tap in self._taps))

    def close(self) -> None:
        for tap in self._taps:
            with contextlib.suppress(OSError):
                tap.close()
        self._taps.clear()

    def __enter__(self) -> LiveCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def interface_names() -> list[str]:
    """The interfaces that exist, in index order."""
    try:
        return [name for _index, name in socket.if_nameindex()]
    except OSError:
        return []


def _check_names(names: list[str]) -> None:
    existing = interface_names()
    for name in names:
        if name != ANY and name not in existing:
            choices = ", ".join([*existing, ANY])
            raise CaptureError(f"interface {name!r} not found; interfaces here: {choices}")


def _arphrd(name: str) -> int:
    """The interface's ARPHRD type (1 Ethernet, 772 loopback, 65534 none/tun...)."""
    try:
        return int(Path(f"/sys/class/net/{name}/type").read_text())
    except (OSError, ValueError):
        return _ARPHRD_ETHER


def _compile(bpf: str | None, dlt: int) -> Any:
    """The filter compiled by libpcap (through scapy), or a CaptureError with libpcap's words."""
    if not bpf:
        return None
    try:
        from scapy.arch.common import compile_filter
        from scapy.error import Scapy_Exception
    except ImportError as error:  # pragma: no cover - scapy is a dependency
        raise CaptureError(f"live capture needs scapy: {error}") from None
    try:
        return compile_filter(bpf, linktype=dlt)
    except ImportError:
        raise CaptureError("capture filters need libpcap (libpcap.so.0.8) installed") from None
    except Scapy_Exception as error:
        # scapy says "Failed to compile filter expression 'x' (libpcap's message)".
        match = re.search(r"\((.*)\)\s*$", str(error))
        detail = match.group(1) if match else str(error)
        raise CaptureError(f"invalid capture filter {bpf!r}: {detail}") from None


def _not_permitted(name: str) -> CaptureError:
    return CaptureError(f"capturing on {name} is not permitted: it needs root or the "
                        "CAP_NET_RAW capability")


def _open_l2(index: int, name: str, bpf: str | None) -> _Tap:
    from scapy.arch.linux import L2ListenSocket

    # scapy warns that it cannot guess a packet class for the socket: we never ask it for one.
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    try:
        listen = L2ListenSocket(iface=name, filter=bpf or None)
    except PermissionError:
        raise _not_permitted(name) from None
    except OSError as error:
        raise CaptureError(f"cannot capture on {name}: {error.strerror or error}") from None
    sock = listen.ins
    _tune(sock)
    return _Tap(index, name, sock, cooked=False, scapy_socket=listen)


def _open_cooked(index: int, name: str, program: Any) -> _Tap:
    # Bound to one interface: protocol 0 receives nothing until bind(), so no unfiltered packet
    # is queued before the filter is attached. `any` cannot be bound: it receives from creation,
    # so what arrived before the filter is thrown away.
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM,
                             socket.htons(_ETH_P_ALL) if name == ANY else 0)
    except PermissionError:
        raise _not_permitted(name) from None
    try:
        if program is not None:
            _attach(sock, program)
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        if name == ANY:
            _discard_queued(sock)
        else:
            sock.bind((name, _ETH_P_ALL))
    except OSError as error:
        sock.close()
        if isinstance(error, PermissionError):
            raise _not_permitted(name) from None
        raise CaptureError(f"cannot capture on {name}: {error.strerror or error}") from None
    _tune(sock)
    return _Tap(index, name, sock, cooked=True)


def _discard_queued(sock: socket.socket) -> None:
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:
            sock.recv(1)


def _attach(sock: socket.socket, program: Any) -> None:
    from scapy.data import SO_ATTACH_FILTER
    from scapy.libs.structures import sock_fprog

    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                        sock_fprog(program.bf_len, program.bf_insns))
    finally:
        _free(program)


def _free(program: Any) -> None:
    if program is not None:
        from scapy.arch.common import free_filter

        free_filter(program)


def _tune(sock: socket.socket) -> None:
    sock.setblocking(False)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    with contextlib.suppress(OSError):  # root may go past net.core.rmem_max
        sock.setsockopt(socket.SOL_SOCKET, 33, RECEIVE_BUFFER)  # SO_RCVBUFFORCE
    with contextlib.suppress(OSError):  # start counting drops from here
        sock.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, _TPACKET_STATS.size)


def _timestamp(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return seconds + nanoseconds * 1e-9
    return None
