"""The device side of the ADB transport: CNXN/AUTH handshake, streams, ``shell:`` and ``sync:``.

One thread reads a connection's packets and routes them to streams; each opened stream runs
its service in its own thread and writes back with real flow control (one WRTE in flight,
wait for the host's OKAY), as adbd does.
"""

from __future__ import annotations

import os
import posixpath
import queue
import socket
import stat
import struct
import threading
import time
from typing import Callable

from . import protocol as P
from .device import PROPS, Device
from .programs import PROGRAMS
from .shell import Shell


class Closed(Exception):
    pass


class Stream:
    def __init__(self, conn: "Connection", local_id: int, remote_id: int) -> None:
        self.conn, self.local_id, self.remote_id = conn, local_id, remote_id  # local = ours, remote = host's
        self.incoming: "queue.Queue[bytes | None]" = queue.Queue()
        self.buffer = bytearray()
        self.okay = threading.Event()
        self.closed = False

    def write(self, data: bytes) -> None:
        step = max(1, self.conn.max_payload)
        for i in range(0, len(data), step):
            if self.closed:
                raise Closed()
            self.okay.clear()
            self.conn.send(P.WRTE, self.local_id, self.remote_id, bytes(data[i:i + step]))
            if not self.okay.wait(60):
                raise Closed()

    def read_exact(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.incoming.get()
            if chunk is None:
                raise Closed()
            self.buffer += chunk
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.conn.send(P.CLSE, self.local_id, self.remote_id)
            except OSError:
                pass


class Connection:
    def __init__(self, server: "FakePhoneServer", sock: socket.socket) -> None:
        self.server, self.sock, self.device = server, sock, server.device
        self.send_lock = threading.Lock()
        self.streams: dict[int, Stream] = {}
        self.next_id = 1
        self.max_payload = P.MAX_PAYLOAD
        self.alive = True

    # ---- raw I/O --------------------------------------------------------------------------
    def _throttle(self, nbytes: int) -> None:
        kbps = self.device.faults.slow_kbps
        if kbps > 0:
            time.sleep(nbytes / (kbps * 1024))

    def send(self, cmd: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        msg = P.pack(cmd, arg0, arg1, data)
        self._throttle(len(msg))
        with self.send_lock:
            self.sock.sendall(msg)

    def recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise Closed()
            buf += chunk
        self._throttle(n)
        return bytes(buf)

    def read_packet(self) -> tuple[int, int, int, bytes]:
        cmd, arg0, arg1, length, _checksum, magic = P.unpack_header(self.recv_exact(P.HEADER.size))
        if cmd not in P.COMMANDS or magic != cmd ^ 0xFFFFFFFF:
            raise Closed()
        return cmd, arg0, arg1, self.recv_exact(length) if length else b""

    # ---- handshake ------------------------------------------------------------------------
    def banner(self) -> bytes:
        props = ";".join(f"{k}={PROPS[k]}" for k in ("ro.product.name", "ro.product.model", "ro.product.device"))
        return f"device::{props};features=cmd\0".encode()

    def handshake(self) -> bool:
        cmd, _version, maxdata, _banner = self.read_packet()
        while cmd != P.CNXN:
            cmd, _version, maxdata, _banner = self.read_packet()
        self.max_payload = min(maxdata or P.MAX_PAYLOAD, P.MAX_PAYLOAD)
        if self.server.auth_required:
            token = os.urandom(P.TOKEN_SIZE)
            self.send(P.AUTH, P.AUTH_TOKEN, 0, token)
            while True:
                cmd, kind, _, data = self.read_packet()
                if cmd == P.CNXN:  # a host restarting the handshake
                    continue
                if cmd != P.AUTH:
                    return False
                if kind == P.AUTH_SIGNATURE:
                    if any(P.verify_token(k, token, data) for k in self.server.authorized_keys()):
                        break
                    token = os.urandom(P.TOKEN_SIZE)
                    self.send(P.AUTH, P.AUTH_TOKEN, 0, token)
                elif kind == P.AUTH_RSAPUBLICKEY:
                    try:
                        key = P.decode_android_pubkey(data)
                    except ValueError:
                        return False
                    if self.device.faults.refuse_auth:
                        # The "Allow USB debugging?" dialog is never accepted: no answer, then hang up.
                        time.sleep(self.server.refuse_hangup_s)
                        return False
                    self.server.add_key(key)  # the user tapped "Allow"
                    break
                else:
                    return False
        self.send(P.CNXN, P.VERSION, P.MAX_PAYLOAD, self.banner())
        return True

    # ---- main loop ------------------------------------------------------------------------
    def serve(self) -> None:
        try:
            if not self.handshake():
                return
            while self.alive:
                cmd, arg0, arg1, data = self.read_packet()
                if cmd == P.OPEN:
                    self.open_stream(arg0, data.rstrip(b"\0").decode("utf-8", "replace"))
                elif cmd == P.OKAY:
                    s = self.streams.get(arg1)
                    if s:
                        s.okay.set()
                elif cmd == P.WRTE:
                    s = self.streams.get(arg1)
                    if s and not s.closed:
                        s.incoming.put(data)
                        self.send(P.OKAY, s.local_id, s.remote_id)
                    else:
                        self.send(P.CLSE, arg1, arg0)
                elif cmd == P.CLSE:
                    s = self.streams.pop(arg1, None)
                    if s:
                        s.incoming.put(None)
                        s.okay.set()
                        s.close()
                elif cmd == P.CNXN:
                    self.send(P.CNXN, P.VERSION, P.MAX_PAYLOAD, self.banner())
        except (Closed, OSError, struct.error):
            pass
        finally:
            self.alive = False
            for s in list(self.streams.values()):
                s.closed = True
                s.incoming.put(None)
                s.okay.set()
            try:
                self.sock.close()
            except OSError:
                pass
            self.server.forget(self)

    def open_stream(self, host_id: int, destination: str) -> None:
        service, _, arg = destination.partition(":")
        handler: Callable[[Stream, str], None] | None = None
        if service in ("shell", "exec"):
            handler = self.run_shell
        elif service == "sync":
            handler = self.run_sync
        if handler is None:
            self.send(P.CLSE, 0, host_id)
            return
        local = self.next_id
        self.next_id += 1
        s = Stream(self, local, host_id)
        self.streams[local] = s
        self.send(P.OKAY, local, host_id)
        threading.Thread(target=self._service, args=(handler, s, arg), daemon=True).start()

    def _service(self, handler: Callable[[Stream, str], None], s: Stream, arg: str) -> None:
        try:
            handler(s, arg)
        except (Closed, OSError):
            pass
        finally:
            s.close()

    # ---- services -------------------------------------------------------------------------
    def run_shell(self, s: Stream, command: str) -> None:
        dev = self.device
        with dev.lock:
            dev.shell_commands += 1
            count = dev.shell_commands
        if dev.faults.drop_after and count > dev.faults.drop_after:
            self.server.drop()
            raise Closed()
        dev.record("shell", command)
        sh = Shell(dev, PROGRAMS)
        result = sh.run(command)
        s.write(result.out)

    def run_sync(self, s: Stream, _arg: str) -> None:
        ids = {v: k for k, v in P.SYNC_IDS.items()}
        while True:
            ident, length = struct.unpack("<2I", s.read_exact(8))
            name = ids.get(ident)
            if name == b"QUIT":
                return
            path = s.read_exact(length).decode("utf-8", "replace") if name in (b"STAT", b"SEND", b"RECV", b"LIST") else ""
            if name == b"STAT":
                node = self.device.files.get(posixpath.normpath(path))
                if node is not None:
                    reply = struct.pack("<4I", ident, node.mode, len(node.read()), node.mtime)
                elif self.device.is_dir(path):
                    reply = struct.pack("<4I", ident, stat.S_IFDIR | 0o771, 4096, 0)
                else:
                    reply = struct.pack("<4I", ident, 0, 0, 0)
                s.write(reply)
            elif name == b"SEND":
                remote, _, mode = path.rpartition(",")
                data = bytearray()
                while True:
                    ident2, value = struct.unpack("<2I", s.read_exact(8))
                    if ids.get(ident2) == b"DATA":
                        data += s.read_exact(value)
                    elif ids.get(ident2) == b"DONE":
                        mtime = value
                        break
                    else:
                        s.write(P.sync_record(b"FAIL", 23, b"invalid data message"))
                        return
                with self.device.lock:
                    err = self.device.write_file(remote, bytes(data), int(mode or "0644") & 0o7777, mtime)
                    if err is None:
                        self.device.pushes.append(remote)
                        self.device.record("push", remote)
                if err:
                    msg = f"couldn't create file: {err}".encode()
                    s.write(P.sync_record(b"FAIL", len(msg), msg))
                else:
                    s.write(P.sync_record(b"OKAY", 0))
            elif name == b"RECV":
                node = self.device.files.get(posixpath.normpath(path))
                if node is None:
                    msg = b"No such file or directory"
                    s.write(P.sync_record(b"FAIL", len(msg), msg))
                    continue
                blob = node.read()
                out = bytearray()
                for i in range(0, len(blob), P.SYNC_DATA_MAX):
                    out += P.sync_record(b"DATA", len(blob[i:i + P.SYNC_DATA_MAX]), blob[i:i + P.SYNC_DATA_MAX])
                out += P.sync_record(b"DONE", 0)
                s.write(bytes(out))
            elif name == b"LIST":
                out = bytearray()
                base = posixpath.normpath(path)
                for nm in self.device.listdir(base):
                    full = posixpath.join(base, nm)
                    node = self.device.files.get(full)
                    mode, size, mtime = (node.mode, len(node.read()), node.mtime) if node else (stat.S_IFDIR | 0o771, 4096, 0)
                    raw = nm.encode()
                    out += struct.pack("<5I", P.SYNC_IDS[b"DENT"], mode, size, mtime, len(raw)) + raw
                out += struct.pack("<5I", P.SYNC_IDS[b"DONE"], 0, 0, 0, 0)
                s.write(bytes(out))
            else:
                msg = b"unknown sync command"
                s.write(P.sync_record(b"FAIL", len(msg), msg))
                return


class FakePhoneServer:
    """Listens on 127.0.0.1:port as a phone with ``adb tcpip`` enabled would."""

    def __init__(self, device: Device, port: int = 0, auth_required: bool = True, refuse_hangup_s: float = 1.0) -> None:
        self.device = device
        self.auth_required = auth_required
        self.refuse_hangup_s = refuse_hangup_s
        self._keys: list = []
        self._conns: set[Connection] = set()
        self._lock = threading.Lock()
        self.port = port
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()
        self.dropped = threading.Event()
        self._bind()

    def _bind(self) -> None:
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(16)
        self.port = ls.getsockname()[1]
        self._listener = ls

    def authorized_keys(self) -> list:
        with self._lock:
            return list(self._keys)

    def add_key(self, key) -> None:
        with self._lock:
            self._keys.append(key)

    def forget(self, conn: Connection) -> None:
        with self._lock:
            self._conns.discard(conn)

    def serve_forever(self) -> None:
        while not self._stopped.is_set():
            ls = self._listener
            if ls is None:
                time.sleep(0.05)
                continue
            try:
                sock, _ = ls.accept()
            except OSError:
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(self, sock)
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=conn.serve, daemon=True).start()

    def start(self) -> "FakePhoneServer":
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def _close_all(self) -> None:
        ls, self._listener = self._listener, None
        if ls is not None:
            try:
                ls.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept(); close() alone does not
            except OSError:
                pass
            try:
                ls.close()
            except OSError:
                pass
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.alive = False
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
                c.sock.close()
            except OSError:
                pass

    def drop(self) -> None:
        """The phone disappears (cable pulled): every connection dies and nothing listens."""
        if self.dropped.is_set():
            return
        self.dropped.set()
        self._close_all()
        down = self.device.faults.down_for
        if down >= 0:
            def comeback() -> None:
                time.sleep(down)
                self.device.faults.drop_after = 0
                self._bind()
                self.dropped.clear()
            threading.Thread(target=comeback, daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()
        self._close_all()
