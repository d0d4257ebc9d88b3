"""``adb-shell`` transport: the adb-shell library in this process, over TCP or USB, with our RSA key."""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path

from adb_shell import exceptions as adb_exc
from adb_shell.adb_device import AdbDevice
from adb_shell.transport.tcp_transport import TcpTransport

from .keys import load_signer
from .transport import (AuthRefusedError, CommandTimeout, DeviceError, DeviceGoneError, PushError, Transport,
                        is_tcp_serial, register_transport)

_GONE = (OSError, adb_exc.TcpTimeoutException, adb_exc.AdbTimeoutError, adb_exc.InvalidResponseError,
         adb_exc.InvalidChecksumError, adb_exc.InvalidCommandError, adb_exc.AdbConnectionError, adb_exc.UsbReadFailedError)


class _TcpTransport(TcpTransport):
    """adb-shell's TCP transport, but a closed socket is an error (not an endless empty read)
    and a write sends every byte (the stock one ignores short sends)."""

    def connect(self, transport_timeout_s):
        super().connect(transport_timeout_s)
        # adb-shell writes a header and its payload separately: without this, Nagle's algorithm
        # and delayed ACKs stall every small command by ~40 ms.
        self._connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def bulk_read(self, numbytes, transport_timeout_s):
        data = super().bulk_read(numbytes, transport_timeout_s)
        if not data:
            raise ConnectionResetError("the phone closed the connection")
        return data

    def bulk_write(self, data, transport_timeout_s):
        view = memoryview(bytes(data))
        while view:
            _, writable, _ = select.select([], [self._connection], [], transport_timeout_s)
            if not writable:
                raise adb_exc.TcpTimeoutException(f"sending to {self._host}:{self._port} timed out")
            sent = self._connection.send(view)
            view = view[sent:]
        return len(data)


@register_transport("adb-shell")
class AdbShellTransport(Transport):
    name = "adb-shell"

    def __init__(self, serial: str, *, io_timeout_s: float = 10.0, **kw) -> None:
        super().__init__(serial, **kw)
        self.io_timeout_s = io_timeout_s
        self._dev: AdbDevice | None = None

    def _make_device(self) -> AdbDevice:
        if is_tcp_serial(self.serial):
            host, _, port = self.serial.rpartition(":")
            return AdbDevice(_TcpTransport(host, int(port)), default_transport_timeout_s=self.io_timeout_s)
        from adb_shell.adb_device import AdbDeviceUsb

        try:
            return AdbDeviceUsb(serial=self.serial or None, default_transport_timeout_s=self.io_timeout_s)
        except adb_exc.InvalidTransportError:
            raise DeviceError("USB phones need the usb extra: pip install 'hwnas[usb]' (or use --transport adb-cli, or adb tcpip + --host)") from None
        except adb_exc.UsbDeviceNotFoundError:
            raise DeviceGoneError(f"no phone with USB serial {self.serial!r} is attached; plug it in and enable USB debugging") from None

    def connect(self) -> None:
        self.close()
        signer = load_signer()
        asked = []
        dev = self._make_device()
        try:
            dev.connect(rsa_keys=[signer], transport_timeout_s=self.io_timeout_s, auth_timeout_s=self.auth_timeout_s,
                        read_timeout_s=self.io_timeout_s, auth_callback=lambda _m: asked.append(True))
        except adb_exc.DeviceAuthError:
            dev.close()
            raise AuthRefusedError(self._auth_message()) from None
        except _GONE as e:
            dev.close()
            if asked:
                raise AuthRefusedError(self._auth_message()) from None
            if "LIBUSB_ERROR_BUSY" in str(e) or "ACCESS" in str(e):
                raise DeviceGoneError(f"the USB interface of {self.serial} is busy: stop the adb server (adb kill-server) or use --transport adb-cli") from None
            raise DeviceGoneError(f"cannot reach phone {self.serial} ({type(e).__name__}: {e})") from None
        self._dev = dev

    def _auth_message(self) -> str:
        return (f"phone {self.serial} did not authorize this computer: unlock it, accept 'Allow USB debugging?' "
                f"(tick 'Always allow'), then retry")

    def close(self) -> None:
        if self._dev is not None:
            try:
                self._dev.close()
            except Exception:  # noqa: BLE001  (closing a dead connection)
                pass
            self._dev = None

    def _device(self) -> AdbDevice:
        if self._dev is None:
            self.connect()
        assert self._dev is not None
        return self._dev

    def _shell_raw(self, line: str, timeout_s: float) -> str:
        dev = self._device()
        t0 = time.monotonic()
        try:
            return dev.shell(line, transport_timeout_s=self.io_timeout_s, read_timeout_s=max(timeout_s, self.io_timeout_s),
                             timeout_s=timeout_s, decode=True)
        except (adb_exc.AdbTimeoutError, adb_exc.TcpTimeoutException) as e:
            self.close()  # the command may still be running: start afresh next time
            if time.monotonic() - t0 >= 0.9 * timeout_s:
                raise CommandTimeout(f"`{line[:80]}` did not finish within {timeout_s:.0f}s on {self.serial}") from None
            raise DeviceGoneError(f"phone {self.serial} stopped answering ({e})") from None
        except _GONE as e:
            self.close()
            raise DeviceGoneError(f"lost the connection to phone {self.serial} ({type(e).__name__}: {e})") from None

    def _push_raw(self, local: Path, remote: str) -> None:
        dev = self._device()
        try:
            dev.push(str(local), remote, transport_timeout_s=self.io_timeout_s, read_timeout_s=max(self.io_timeout_s, 60.0))
        except (adb_exc.PushFailedError, adb_exc.AdbCommandFailureException) as e:
            raise PushError(f"pushing {local.name} to {remote!r} on {self.serial} failed: {_reason(e)}") from None
        except _GONE as e:
            self.close()
            raise DeviceGoneError(f"lost the connection to phone {self.serial} while pushing ({type(e).__name__}: {e})") from None


def _reason(e: Exception) -> str:
    arg = e.args[0] if e.args else e
    if isinstance(arg, (bytes, bytearray)):
        return arg.decode("utf-8", "replace")
    return str(arg)
