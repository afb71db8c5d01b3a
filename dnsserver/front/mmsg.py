"""recvmmsg/sendmmsg through ctypes over libc: the system-call layer of the batch transport.

No compiler at install time: the structures are declared here and libc is called directly,
through wrappers that return a count or -errno (tests, the minimal responder) or, in the hot
loop, as libc's functions themselves (`libc_calls`, and `libc_single`'s recvfrom/sendto for
a datagram that came alone); what a ctypes call costs is in `_load`.
`Slots` owns every buffer a batch needs, allocated once and reused: one 64 KB receive and
one 64 KB send area per slot (anonymous mmaps, so only the pages a datagram touches become
resident; no datagram is ever cut), one sockaddr_in6-sized name per slot, the iovecs and the
mmsghdr arrays. The hot loop (udpbatch.py) reads and writes the headers through flat integer
views, which cost a fraction of a ctypes attribute access.

Only 64-bit Linux with recvmmsg and sendmmsg in libc is supported (`available()`); elsewhere
the server keeps the event loop's own UDP transport.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import mmap
import socket
import sys

MSG_DONTWAIT = 0x40
DATAGRAM_MAX = 65536  # a slot holds any UDP payload (65,507 bytes over IPv4, 65,527 over IPv6)
NAME_SIZE = 32  # room for a sockaddr_in6 (28 bytes), 8-byte aligned


class iovec(ctypes.Structure):  # noqa: N801 - the C names
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class msghdr(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class mmsghdr(ctypes.Structure):  # noqa: N801
    _fields_ = [("msg_hdr", msghdr), ("msg_len", ctypes.c_uint)]


HDR = ctypes.sizeof(mmsghdr)  # 64 on 64-bit Linux
# Where the hot loop reads and writes: msg_len as a uint32 index, msg_name as a uint64 index
# into one header, iov_len as a uint64 index into one iovec.
LEN_AT = mmsghdr.msg_len.offset // 4
NAME_AT = msghdr.msg_name.offset // 8
IOV_LEN_AT = iovec.iov_len.offset // 8

_libc = None
_recvmmsg = None
_sendmmsg = None
_recvfrom = None
_sendto = None
_single = None  # recvfrom and sendto through a handle that keeps no errno


def _load() -> bool:
    global _libc, _recvmmsg, _sendmmsg, _recvfrom, _sendto, _single
    if _libc is not None:
        return _recvmmsg is not None
    if not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_void_p) != 8 or HDR != 64:
        _libc = False
        return False
    try:
        # PyDLL: the GIL is kept during the call (the calls never block: MSG_DONTWAIT), which
        # saves releasing and taking it again per call. No argtypes: ctypes converts declared
        # arguments through from_param on every call, which cost as much as the rest of the
        # call together; ints go as C ints as they are (libffi widens them to 64-bit registers;
        # the counts and lengths here are small), pointers as byref()s made once.
        _libc = ctypes.PyDLL(ctypes.util.find_library("c") or None, use_errno=True)
        recv, send = _libc.recvmmsg, _libc.sendmmsg
        recv_one, send_one = _libc.recvfrom, _libc.sendto
        plain = ctypes.PyDLL(ctypes.util.find_library("c") or None)
        single = plain.recvfrom, plain.sendto
    except (OSError, AttributeError):
        return False
    recv.restype = send.restype = ctypes.c_int
    for call in (recv_one, send_one, *single):
        call.restype = ctypes.c_ssize_t
    _recvmmsg, _sendmmsg, _recvfrom, _sendto, _single = recv, send, recv_one, send_one, single
    return True


def available() -> bool:
    """Whether this platform has what the batch transport needs."""
    return _load()


def recvmmsg(fd: int, hdrs, count: int) -> int:
    """Datagrams read into the `count` headers at `hdrs` (Slots.recv_hdrs), non-blocking; or
    -errno."""
    n = _recvmmsg(fd, hdrs, count, MSG_DONTWAIT, None)
    return n if n >= 0 else -ctypes.get_errno()


def sendmmsg(fd: int, hdrs, count: int) -> int:
    """Datagrams sent from the `count` headers at `hdrs` (`send_from[k]`: from reply k on),
    non-blocking; or -errno. Fewer than `count` means the next one failed; sending from there
    tells why."""
    n = _sendmmsg(fd, hdrs, count, MSG_DONTWAIT)
    return n if n >= 0 else -ctypes.get_errno()


def libc_calls() -> tuple:
    """libc's recvmmsg and sendmmsg themselves, for a hot loop that cannot afford the wrappers'
    Python call: (fd, hdrs, count, MSG_DONTWAIT[, None]) -> count, or -1 and ctypes.get_errno()."""
    return _recvmmsg, _sendmmsg


def libc_single(errno: bool = True) -> tuple:
    """libc's recvfrom and sendto, for one datagram: recvfrom(fd, Slots.recv0, DATAGRAM_MAX,
    MSG_DONTWAIT, Slots.name0, Slots.namelen_ref) reads into slot 0 and its sender into name 0;
    sendto(fd, reply, len(reply), MSG_DONTWAIT, Slots.name0, Slots.namelen) answers it. Each
    returns a length, or -1 and ctypes.get_errno(); with errno=False the same functions through
    a handle that keeps no errno (ctypes then skips a lookup per call): a call of those that
    failed is made again through the others to learn why."""
    return (_recvfrom, _sendto) if errno else _single


def like_libc(call):
    """`call` (a wrapper's signature: a test's stand-in) called as libc_calls() are."""

    def libc(fd: int, hdrs, count: int, flags: int, timeout=None) -> int:
        n = call(fd, hdrs, count)
        if n >= 0:
            return n
        ctypes.set_errno(-n)
        return -1

    return libc


def _address(buf) -> int:
    return ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))


class Slots:
    """The buffers of one batch socket: `count` datagrams in, `count` replies out.

    Header i of recv_hdrs reads datagram i into recv[i * DATAGRAM_MAX:] and its sender's
    address into name i; header k of send_hdrs writes send[k * DATAGRAM_MAX:][:length] to the
    name its msg_name points at (name k unless the loop points it elsewhere). `namelen` is the
    socket family's sockaddr size: the kernel writes that same size for every datagram of a
    socket (an AF_INET6 socket gives IPv4 clients as v4-mapped sockaddr_in6), so the headers
    are never reset.
    """

    def __init__(self, count: int, family: int):
        self.count = count
        self.namelen = 28 if family == socket.AF_INET6 else 16
        self.recv = mmap.mmap(-1, count * DATAGRAM_MAX)
        self.send = mmap.mmap(-1, count * DATAGRAM_MAX)
        self._names = bytearray(count * NAME_SIZE)
        self.names = memoryview(self._names)
        self._iovs = bytearray(2 * count * ctypes.sizeof(iovec))
        self._recv_hdrs = bytearray(count * HDR)
        self._send_hdrs = bytearray(count * HDR)
        recv_base, send_base = _address(self.recv), _address(self.send)
        names_base = _address(self._names)
        riov = (iovec * count).from_buffer(self._iovs)
        siov = (iovec * count).from_buffer(self._iovs, count * ctypes.sizeof(iovec))
        rhdr = (mmsghdr * count).from_buffer(self._recv_hdrs)
        shdr = (mmsghdr * count).from_buffer(self._send_hdrs)
        self.name_addrs = [names_base + i * NAME_SIZE for i in range(count)]
        for i in range(count):
            riov[i].iov_base, riov[i].iov_len = recv_base + i * DATAGRAM_MAX, DATAGRAM_MAX
            siov[i].iov_base = send_base + i * DATAGRAM_MAX
            for hdr, iov in ((rhdr[i].msg_hdr, riov[i]), (shdr[i].msg_hdr, siov[i])):
                hdr.msg_name = self.name_addrs[i]
                hdr.msg_namelen = self.namelen
                hdr.msg_iov = ctypes.addressof(iov)
                hdr.msg_iovlen = 1
        # what the calls are handed: byref()s, made once (an array or structure passed itself
        # makes ctypes build one for every call); send_from[k] starts at reply k, for the rest
        # of a partial send. Slot 0 and name 0 are for recvfrom/sendto (libc_single); the
        # kernel writes the same address length for every datagram of a socket, so
        # namelen_ref is never reset.
        self.recv_hdrs = ctypes.byref(rhdr)
        self.send_from = [ctypes.byref(shdr, k * HDR) for k in range(count)]
        self.send_hdrs = self.send_from[0]
        self.recv0 = ctypes.byref((ctypes.c_char * DATAGRAM_MAX).from_buffer(self.recv))
        self.name0 = ctypes.byref((ctypes.c_char * NAME_SIZE).from_buffer(self._names))
        self._namelen = ctypes.c_uint32(self.namelen)
        self.namelen_ref = ctypes.byref(self._namelen)
        # flat views for the hot loop, and per slot where its data starts and which word of a
        # view holds its length: recv_words[i] is datagram i's msg_len, send_iov_quads[j]
        # reply k's iov_len, for (_, i) = recv_at[j] and (_, j) = send_at[k]
        self.recv_words = memoryview(self._recv_hdrs).cast("I")
        self.send_quads = memoryview(self._send_hdrs).cast("Q")
        self.send_iov_quads = memoryview(self._iovs)[count * ctypes.sizeof(iovec):].cast("Q")
        iov_quads = ctypes.sizeof(iovec) // 8
        self.recv_at = [(i * DATAGRAM_MAX, i * HDR // 4 + LEN_AT) for i in range(count)]
        self.send_at = [(i * DATAGRAM_MAX, i * iov_quads + IOV_LEN_AT) for i in range(count)]
        self._keep = (riov, siov, rhdr, shdr)


def sockaddr_to_addr(name: bytes | memoryview) -> tuple:
    """A sockaddr_in or sockaddr_in6 as the event loop gives a sender: (host, port) or
    (host, port, flowinfo, scope_id)."""
    family = int.from_bytes(name[0:2], sys.byteorder)
    port = int.from_bytes(name[2:4], "big")
    if family == socket.AF_INET6:
        return (
            socket.inet_ntop(socket.AF_INET6, bytes(name[8:24])),
            port,
            int.from_bytes(name[4:8], "big"),
            int.from_bytes(name[24:28], sys.byteorder),
        )
    return socket.inet_ntop(socket.AF_INET, bytes(name[4:8])), port


# errnos of a send that waits for the socket to drain: the rest is retried once writable
WOULD_BLOCK = {errno.EAGAIN, errno.EWOULDBLOCK}


_load()  # at import: the wrappers above call what it finds
