"""The ADB wire format as a device speaks it: 24-byte message headers and sync-protocol records.

Written from the protocol description (system/core/adb/protocol.txt and SYNC.TXT), not from
the host library, so the tests exercise the host code against an independent implementation.
"""

from __future__ import annotations

import base64
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

HEADER = struct.Struct("<6I")
VERSION = 0x01000000
MAX_PAYLOAD = 256 * 1024

AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
TOKEN_SIZE = 20  # a SHA-1-sized token: the host signs it as a pre-hashed SHA-1 digest


def wire(name: bytes) -> int:
    return struct.unpack("<I", name)[0]


def name_of(value: int) -> bytes:
    return struct.pack("<I", value)


CNXN, AUTH, OPEN, OKAY, CLSE, WRTE = (wire(n) for n in (b"CNXN", b"AUTH", b"OPEN", b"OKAY", b"CLSE", b"WRTE"))
COMMANDS = {CNXN, AUTH, OPEN, OKAY, CLSE, WRTE}


def pack(cmd: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    return HEADER.pack(cmd, arg0, arg1, len(data), sum(data) & 0xFFFFFFFF, cmd ^ 0xFFFFFFFF) + data


def unpack_header(raw: bytes) -> tuple[int, int, int, int, int, int]:
    return HEADER.unpack(raw)


# ---- RSA public keys in Android's binary format (libcrypto_utils/android_pubkey.c) ----------
_PUBKEY = struct.Struct("<II256s256sI")


def decode_android_pubkey(blob: bytes) -> rsa.RSAPublicKey:
    """``base64(struct) [' user@host'] NUL`` -> an RSA public key (raises ValueError if malformed)."""
    text = blob.rstrip(b"\0").split(b" ", 1)[0]
    raw = base64.b64decode(text, validate=True)
    if len(raw) != _PUBKEY.size:
        raise ValueError(f"public key blob has {len(raw)} bytes, expected {_PUBKEY.size}")
    words, _n0inv, modulus, _rr, exponent = _PUBKEY.unpack(raw)
    if words != 64:
        raise ValueError("only 2048-bit adb keys are supported")
    n = int.from_bytes(modulus, "little")
    return rsa.RSAPublicNumbers(exponent, n).public_key()


def verify_token(key: rsa.RSAPublicKey, token: bytes, signature: bytes) -> bool:
    """What adbd does: RSA_verify(NID_sha1, token, signature) - PKCS#1 v1.5 over a raw SHA-1 digest."""
    try:
        key.verify(signature, token, padding.PKCS1v15(), utils.Prehashed(hashes.SHA1()))
        return True
    except Exception:  # noqa: BLE001  (any failure = not this key)
        return False


# ---- sync protocol ---------------------------------------------------------------------------
SYNC_IDS = {n: wire(n) for n in (b"STAT", b"SEND", b"RECV", b"LIST", b"DATA", b"DONE", b"OKAY", b"FAIL", b"QUIT", b"DENT")}
SYNC_DATA_MAX = 64 * 1024


def sync_record(name: bytes, value: int, payload: bytes = b"") -> bytes:
    return struct.pack("<2I", SYNC_IDS[name], value) + payload
