"""``hwnas device setup``: make a phone ready to profile (work folder, benchmark binary, governor)."""

from __future__ import annotations

import posixpath
from pathlib import Path

from ..errors import HwnasError
from .checks import pin_governor as _pin
from .phone import Phone
from .profiles import DeviceProfile


def setup_phone(phone: Phone, profile: DeviceProfile, benchmark_binary: Path | None = None,
                pin_governor: bool = False) -> list[str]:
    """Do the set-up steps; returns one line per step done."""
    done: list[str] = []
    phone.call(lambda t: t.check(["mkdir", "-p", profile.remote_dir, posixpath.join(profile.remote_dir, "models")],
                                 f"creating {profile.remote_dir!r}"))
    done.append(f"work folder {profile.remote_dir} ready")
    if benchmark_binary is not None:
        src = Path(benchmark_binary)
        if not src.is_file():
            raise HwnasError(f"benchmark binary {str(src)!r} not found; download TensorFlow Lite's android_aarch64 benchmark_model and pass its path")
        head = src.read_bytes()[:20]
        if head[:4] != b"\x7fELF" or head[18:20] != b"\xb7\x00":
            raise HwnasError(f"{str(src)!r} is not an arm64 (aarch64) Linux executable; get the android_aarch64 build of benchmark_model")
        digest = phone.call(lambda t: t.push(src, profile.benchmark_binary))
        phone.call(lambda t: t.check(["chmod", "755", profile.benchmark_binary], "chmod"))
        done.append(f"pushed {src.name} -> {profile.benchmark_binary} (sha256 {digest[:12]}, verified)")
    if pin_governor:
        if not phone.rooted():
            raise HwnasError(f"phone {phone.serial} is not rooted: the governor cannot be pinned (profiling still works, with a warning)")
        changed = _pin(phone, profile)
        done.append(f"governor {profile.governor!r} set on {', '.join(changed) or 'no CPU'}")
    return done
