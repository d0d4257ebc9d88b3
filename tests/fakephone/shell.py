"""A small POSIX-style shell (the phone's /system/bin/sh) with the toybox applets hwnas uses.

It parses like a real shell - single/double quotes, backslashes, ``$?``, ``;``, ``&&``,
``||``, ``|`` and ``>``/``>>``/``2>&1`` redirections - so a badly quoted command line really
runs extra commands here, as it would on a phone.
"""

from __future__ import annotations

import fnmatch
import hashlib
import posixpath
import shlex
import stat
import time
from dataclasses import dataclass, field
from typing import Callable

from .device import Device

NOT_FOUND = 127
OPS = ("&&", "||", ";", "|", "&")


class ShellSyntaxError(Exception):
    pass


@dataclass
class Word:
    parts: list[tuple[str, str]] = field(default_factory=list)  # ("lit", text) | ("qlit", quoted text) | ("var", name)
    quoted: bool = False

    def expand(self, env: dict[str, str]) -> str:
        return "".join(env.get(v, "") if k == "var" else v for k, v in self.parts)

    def glob_pattern(self, env: dict[str, str]) -> str | None:
        """An fnmatch pattern if an unquoted part has a wildcard (quoted parts are literal), else None."""
        if not any(k == "lit" and any(ch in v for ch in "*?[") for k, v in self.parts):
            return None
        esc = lambda t: "".join(f"[{ch}]" if ch in "*?[" else ch for ch in t)  # noqa: E731
        return "".join(v if k == "lit" else esc(env.get(v, "") if k == "var" else v) for k, v in self.parts)


def tokenize(line: str) -> list[Word | str]:
    """Words and operators; redirection operators come out as strings like '>' or '2>&1'."""
    out: list[Word | str] = []
    cur: Word | None = None
    i, n = 0, len(line)

    def lit(text: str, quoted: bool = False) -> None:
        nonlocal cur
        cur = cur or Word()
        cur.parts.append(("qlit" if quoted else "lit", text))

    def var(name: str) -> None:
        nonlocal cur
        cur = cur or Word()
        cur.parts.append(("var", name))

    def flush() -> None:
        nonlocal cur
        if cur is not None:
            out.append(cur)
            cur = None

    def read_var(j: int) -> int:
        if j < n and line[j] in "?$#":
            var(line[j])
            return j + 1
        if j < n and line[j] == "{":
            k = line.find("}", j)
            if k < 0:
                raise ShellSyntaxError("bad substitution")
            var(line[j + 1:k])
            return k + 1
        k = j
        while k < n and (line[k].isalnum() or line[k] == "_"):
            k += 1
        if k == j:
            lit("$")
            return j
        var(line[j:k])
        return k

    while i < n:
        c = line[i]
        if c in " \t\n":
            flush()
            i += 1
        elif c == "'":
            j = line.find("'", i + 1)
            if j < 0:
                raise ShellSyntaxError("unterminated quoted string")
            lit(line[i + 1:j], True)
            cur.quoted = True  # type: ignore[union-attr]
            i = j + 1
        elif c == '"':
            cur = cur or Word()
            cur.quoted = True
            i += 1
            while True:
                if i >= n:
                    raise ShellSyntaxError("unterminated quoted string")
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and line[i + 1] in '"\\$`\n':
                    lit(line[i + 1], True)
                    i += 2
                elif c == "$":
                    i = read_var(i + 1)
                else:
                    lit(c, True)
                    i += 1
        elif c == "\\":
            if i + 1 < n:
                lit(line[i + 1], True)
            i += 2
        elif c == "$":
            i = read_var(i + 1)
        elif c == "#" and cur is None:
            break
        elif c in ";&|":
            flush()
            two = line[i:i + 2]
            if two in ("&&", "||"):
                out.append(two)
                i += 2
            else:
                out.append(c)
                i += 1
        elif c in "<>":
            fd = ""
            if cur is not None and len(cur.parts) == 1 and cur.parts[0][0] == "lit" and cur.parts[0][1].isdigit():
                fd = cur.parts[0][1]
                cur = None
            flush()
            op = c
            if line[i:i + 2] == ">>":
                op, i = ">>", i + 2
            elif line[i:i + 2] == ">&":
                j = i + 2
                while j < n and line[j].isdigit():
                    j += 1
                op, i = ">&" + line[i + 2:j], j
            else:
                i += 1
            out.append((fd or ("0" if c == "<" else "1")) + op)
        else:
            lit(c)
            i += 1
    flush()
    return out


@dataclass
class Result:
    out: bytes = b""
    rc: int = 0


Applet = Callable[["Shell", list[str], bytes], Result]
APPLETS: dict[str, Applet] = {}


def applet(*names: str) -> Callable[[Applet], Applet]:
    def deco(fn: Applet) -> Applet:
        for nm in names:
            APPLETS[nm] = fn
        return fn
    return deco


class Shell:
    """Runs one ``shell:`` command line on the device; merged stdout+stderr like adb shell v1."""

    def __init__(self, device: Device, binaries: dict[str, Callable[["Shell", list[str]], Result]]) -> None:
        self.device = device
        self.binaries = binaries  # basename pattern -> program (benchmark_model, ...)
        self.env = {"?": "0", "HOME": "/", "PATH": "/system/bin:/system/xbin:/vendor/bin", "USER": "shell"}
        self.cwd = "/"

    def abspath(self, p: str) -> str:
        return posixpath.normpath(posixpath.join(self.cwd, p))

    # ---- parsing and running ----------------------------------------------------------
    def run(self, line: str) -> Result:
        try:
            toks = tokenize(line)
        except ShellSyntaxError as e:
            return Result(f"/system/bin/sh: syntax error: {e}\n".encode(), 2)
        out = bytearray()
        rc = 0
        cmds: list[tuple[list[Word | str], str]] = []
        cur: list[Word | str] = []
        for t in toks:
            if isinstance(t, str) and t in OPS:
                cmds.append((cur, t))
                cur = []
            else:
                cur.append(t)
        cmds.append((cur, ";"))
        skip = False
        pipe_in: bytes | None = None
        for toks_i, op in cmds:
            if not toks_i:
                if op in ("&&", "||", "|"):
                    return Result(bytes(out) + f"/system/bin/sh: syntax error: '{op}' unexpected\n".encode(), 2)
                continue
            if skip:
                res = Result(rc=rc)
            else:
                res = self.simple(toks_i, pipe_in or b"")
            if op == "|":
                pipe_in = res.out
                continue
            pipe_in = None
            if not skip:
                out += res.out
                rc = res.rc
                self.env["?"] = str(rc)
            skip = (op == "&&" and rc != 0) or (op == "||" and rc == 0)
            if getattr(self, "exit_now", False):
                break
        return Result(bytes(out), rc)

    def simple(self, toks: list[Word | str], stdin: bytes) -> Result:
        args: list[str] = []
        redirs: list[tuple[str, str]] = []
        it = iter(toks)
        for t in it:
            if isinstance(t, str):
                if "&" in t[2:] or t.endswith(">&"):
                    redirs.append((t, ""))
                else:
                    target = next(it, None)
                    if not isinstance(target, Word):
                        return Result(b"/system/bin/sh: syntax error: redirection without a file\n", 2)
                    redirs.append((t, target.expand(self.env)))
            else:
                text = t.expand(self.env)
                pattern = t.glob_pattern(self.env)
                matches = self.glob(pattern) if pattern is not None else []
                args.extend(matches or [text])
        for r, target in redirs:
            if r.startswith("0<"):
                node = self.device.files.get(self.abspath(target))
                if node is None:
                    return Result(f"/system/bin/sh: {target}: No such file or directory\n".encode(), 1)
                stdin = node.read()
        res = self.exec(args, stdin) if args else Result()
        for r, target in redirs:
            if r in ("1>", "1>>", "2>", "2>>") and target:
                if target == "/dev/null":
                    if r.startswith("1"):
                        res = Result(b"", res.rc)
                    continue
                if r.startswith("1"):
                    path = self.abspath(target)
                    old = self.device.files.get(path)
                    data = (old.read() if old is not None and r.endswith(">>") else b"") + res.out
                    err = self.device.write_file(path, data)
                    if err:
                        return Result(f"/system/bin/sh: can't create {target}: {err}\n".encode(), 1)
                    res = Result(b"", res.rc)
        return res

    def glob(self, pattern: str) -> list[str]:
        path = self.abspath(pattern)
        parts = path.strip("/").split("/")
        found = ["/"]
        for part in parts:
            nxt = []
            for base in found:
                if any(ch in part for ch in "*?["):
                    nxt += [posixpath.join(base, nm) for nm in self.device.listdir(base) if fnmatch.fnmatchcase(nm, part)]
                elif self.device.exists(posixpath.join(base, part)):
                    nxt.append(posixpath.join(base, part))
            found = nxt
        return sorted(found)

    def exec(self, args: list[str], stdin: bytes) -> Result:
        self.device.log.append(shlex.join(args))
        name = args[0]
        if "/" not in name and name in APPLETS:
            return APPLETS[name](self, args, stdin)
        path = self.resolve(name)
        if path is None:
            return Result(f"/system/bin/sh: {name}: inaccessible or not found\n".encode(), NOT_FOUND)
        node = self.device.files[path]
        if not node.mode & 0o111:
            return Result(f"/system/bin/sh: {name}: can't execute: Permission denied\n".encode(), 126)
        base = posixpath.basename(path)
        if base in APPLETS:
            return APPLETS[base](self, args, stdin)
        for pattern, program in self.binaries.items():
            if fnmatch.fnmatchcase(base, pattern) and node.read().startswith(b"\x7fELF"):
                return program(self, args)
        if not node.read().startswith(b"\x7fELF"):
            return Result(f"/system/bin/sh: {name}: not executable: bad ELF magic\n".encode(), 126)
        return Result()

    def resolve(self, name: str) -> str | None:
        if "/" in name:
            p = self.abspath(name)
            return p if p in self.device.files else None
        for d in self.env["PATH"].split(":"):
            p = posixpath.join(d, name)
            if p in self.device.files:
                return p
        return None


def _err(msg: str, rc: int = 1) -> Result:
    return Result(msg.encode() + b"\n", rc)


@applet("true")
def _true(sh: Shell, args: list[str], stdin: bytes) -> Result:
    return Result()


@applet("false")
def _false(sh: Shell, args: list[str], stdin: bytes) -> Result:
    return Result(rc=1)


@applet("exit")
def _exit(sh: Shell, args: list[str], stdin: bytes) -> Result:
    sh.exit_now = True  # type: ignore[attr-defined]
    return Result(rc=int(args[1]) if len(args) > 1 else int(sh.env["?"]))


@applet("echo")
def _echo(sh: Shell, args: list[str], stdin: bytes) -> Result:
    a = args[1:]
    nl = True
    if a and a[0] == "-n":
        nl, a = False, a[1:]
    return Result((" ".join(a) + ("\n" if nl else "")).encode())


@applet("cd")
def _cd(sh: Shell, args: list[str], stdin: bytes) -> Result:
    p = sh.abspath(args[1] if len(args) > 1 else "/")
    if not sh.device.is_dir(p):
        return _err(f"/system/bin/sh: cd: {args[1]}: No such file or directory", 2)
    sh.cwd = p
    return Result()


@applet("id")
def _id(sh: Shell, args: list[str], stdin: bytes) -> Result:
    if "-u" in args:
        return Result(b"0\n" if sh.env.get("USER") == "root" else b"2000\n")
    if sh.env.get("USER") == "root":
        return Result(b"uid=0(root) gid=0(root) groups=0(root) context=u:r:su:s0\n")
    return Result(b"uid=2000(shell) gid=2000(shell) groups=2000(shell),1004(input),1007(log),1011(adb),1015(sdcard_rw),1028(sdcard_r),3001(net_bt_admin),3002(net_bt),3003(inet),3006(net_bw_stats),3009(readproc),3011(uhid) context=u:r:shell:s0\n")


@applet("su")
def _su(sh: Shell, args: list[str], stdin: bytes) -> Result:
    if not sh.device.faults.rooted:
        return _err("/system/bin/sh: su: inaccessible or not found", NOT_FOUND)
    if len(args) >= 3 and args[1] == "-c":
        inner = Shell(sh.device, sh.binaries)
        inner.env["USER"] = "root"
        return inner.run(args[2])
    return Result()


@applet("getprop")
def _getprop(sh: Shell, args: list[str], stdin: bytes) -> Result:
    from .device import PROPS

    props = dict(PROPS, **{"ro.serialno": sh.device.serial})
    if len(args) > 1:
        return Result((props.get(args[1], args[2] if len(args) > 2 else "") + "\n").encode())
    return Result("".join(f"[{k}]: [{v}]\n" for k, v in sorted(props.items())).encode())


@applet("uname")
def _uname(sh: Shell, args: list[str], stdin: bytes) -> Result:
    return Result(b"aarch64\n" if "-m" in args else b"Linux\n")


@applet("nproc")
def _nproc(sh: Shell, args: list[str], stdin: bytes) -> Result:
    return Result(b"8\n")


@applet("sleep")
def _sleep(sh: Shell, args: list[str], stdin: bytes) -> Result:
    time.sleep(min(float(args[1]) if len(args) > 1 else 0, 30))
    return Result()


@applet("cat")
def _cat(sh: Shell, args: list[str], stdin: bytes) -> Result:
    if len(args) == 1:
        return Result(stdin)
    out, rc = bytearray(), 0
    for a in args[1:]:
        p = sh.abspath(a)
        node = sh.device.files.get(p)
        if node is None:
            out += f"cat: {a}: {'Is a directory' if sh.device.is_dir(p) else 'No such file or directory'}\n".encode()
            rc = 1
        else:
            out += node.read()
    return Result(bytes(out), rc)


@applet("grep")
def _grep(sh: Shell, args: list[str], stdin: bytes) -> Result:
    """``grep [-H] PATTERN [FILE...]`` with a fixed-string pattern ('.' matches any non-empty line)."""
    rest = [a for a in args[1:] if not a.startswith("-")]
    pat, files = rest[0], rest[1:]
    with_name = "-H" in args or len(files) > 1
    out, errs, hit = [], [], False
    sources = [(f, sh.device.files.get(sh.abspath(f))) for f in files] if files else [("(standard input)", None)]
    for name, node in sources:
        if files and node is None:
            errs.append(f"grep: {name}: No such file or directory")
            continue
        text = (node.read() if node is not None else stdin).decode(errors="replace")
        for ln in text.splitlines():
            if (pat == "." and ln) or (pat != "." and pat in ln):
                hit = True
                out.append(f"{name}:{ln}" if with_name else ln)
    return Result("".join(x + "\n" for x in out + errs).encode(), 0 if hit else (2 if errs else 1))


@applet("mkdir")
def _mkdir(sh: Shell, args: list[str], stdin: bytes) -> Result:
    for a in args[1:]:
        if a.startswith("-"):
            continue
        p = sh.abspath(a)
        parent = posixpath.dirname(p)
        if not (sh.device.writable_dir(p) or sh.device.writable_dir(parent)):
            return _err(f"mkdir: '{a}': Permission denied")
        if sh.device.faults.disk_full and not sh.device.is_dir(p):
            return _err(f"mkdir: '{a}': No space left on device")
        sh.device.mkdirs(p)
    return Result()


@applet("rm")
def _rm(sh: Shell, args: list[str], stdin: bytes) -> Result:
    force = any(a.startswith("-") and "f" in a for a in args[1:])
    rc, out = 0, bytearray()
    for a in args[1:]:
        if a.startswith("-"):
            continue
        p = sh.abspath(a)
        if p in sh.device.files:
            if not sh.device.writable_dir(posixpath.dirname(p)):
                out += f"rm: {a}: Permission denied\n".encode()
                rc = 1
                continue
            del sh.device.files[p]
        elif sh.device.is_dir(p) and any(x.startswith("-") and "r" in x for x in args[1:]):
            for f in [f for f in sh.device.files if f.startswith(p + "/")]:
                del sh.device.files[f]
            sh.device.dirs -= {d for d in sh.device.dirs if d == p or d.startswith(p + "/")}
        elif not force:
            out += f"rm: {a}: No such file or directory\n".encode()
            rc = 1
    return Result(bytes(out), rc)


@applet("chmod")
def _chmod(sh: Shell, args: list[str], stdin: bytes) -> Result:
    mode = args[1]
    for a in args[2:]:
        node = sh.device.files.get(sh.abspath(a))
        if node is None:
            return _err(f"chmod: {a}: No such file or directory")
        if mode in ("+x", "a+x", "u+x"):
            node.mode |= 0o111
        else:
            node.mode = stat.S_IFMT(node.mode) | int(mode, 8)
    return Result()


@applet("ls")
def _ls(sh: Shell, args: list[str], stdin: bytes) -> Result:
    out, rc = bytearray(), 0
    for a in [x for x in args[1:] if not x.startswith("-")] or ["."]:
        p = sh.abspath(a)
        if p in sh.device.files:
            out += (a + "\n").encode()
        elif sh.device.is_dir(p):
            out += "".join(nm + "\n" for nm in sh.device.listdir(p)).encode()
        else:
            out += f"ls: {a}: No such file or directory\n".encode()
            rc = 1
    return Result(bytes(out), rc)


@applet("test", "[")
def _test(sh: Shell, args: list[str], stdin: bytes) -> Result:
    a = args[1:-1] if args[0] == "[" else args[1:]
    if len(a) == 2:
        flag, path = a
        p = sh.abspath(path)
        node = sh.device.files.get(p)
        ok = {"-e": node is not None or sh.device.is_dir(p), "-f": node is not None, "-d": sh.device.is_dir(p),
              "-x": node is not None and bool(node.mode & 0o111), "-s": node is not None and len(node.read()) > 0,
              "-w": sh.device.writable_dir(p) if sh.device.is_dir(p) else node is not None and sh.device.writable_dir(posixpath.dirname(p)),
              "-r": node is not None or sh.device.is_dir(p)}.get(flag)
        if ok is None:
            return _err(f"test: unknown operator {flag}", 2)
        return Result(rc=0 if ok else 1)
    if len(a) == 3 and a[1] in ("=", "!="):
        return Result(rc=0 if (a[0] == a[2]) == (a[1] == "=") else 1)
    return Result(rc=0 if a and a[0] else 1)


@applet("sha256sum", "md5sum")
def _sum(sh: Shell, args: list[str], stdin: bytes) -> Result:
    algo = hashlib.sha256 if args[0].endswith("sha256sum") else hashlib.md5
    out, rc = bytearray(), 0
    for a in args[1:]:
        node = sh.device.files.get(sh.abspath(a))
        if node is None:
            out += f"{args[0]}: {a}: No such file or directory\n".encode()
            rc = 1
        else:
            out += f"{algo(node.read()).hexdigest()}  {a}\n".encode()
    return Result(bytes(out), rc)


@applet("df")
def _df(sh: Shell, args: list[str], stdin: bytes) -> Result:
    from .device import DATA_CAPACITY_KB

    free = sh.device.free_kb()
    used = DATA_CAPACITY_KB - free
    head = "Filesystem      1K-blocks     Used Available Use% Mounted on\n"
    return Result((head + f"/dev/block/dm-5  {DATA_CAPACITY_KB} {used} {free} {100 * used // DATA_CAPACITY_KB}% /data\n").encode())


@applet("taskset")
def _taskset(sh: Shell, args: list[str], stdin: bytes) -> Result:
    a = args[1:]
    if not a or a[0].startswith("-"):
        return _err("usage: taskset [-ap] [mask] [PID | cmd [args...]]")
    try:
        mask = int(a[0], 16)
    except ValueError:
        return _err(f"taskset: bad mask '{a[0]}'")
    if mask & 0xFF == 0:
        return _err("taskset: sched_setaffinity: Invalid argument")
    if len(a) < 2:
        return _err("usage: taskset [-ap] [mask] [PID | cmd [args...]]")
    sh.env["_AFFINITY"] = format(mask & 0xFF, "x")
    try:
        return sh.exec(a[1:], stdin)
    finally:
        sh.env.pop("_AFFINITY", None)


@applet("touch")
def _touch(sh: Shell, args: list[str], stdin: bytes) -> Result:
    for a in args[1:]:
        p = sh.abspath(a)
        if p not in sh.device.files:
            err = sh.device.write_file(p, b"")
            if err:
                return _err(f"touch: '{a}': {err}")
    return Result()


@applet("mv")
def _mv(sh: Shell, args: list[str], stdin: bytes) -> Result:
    a = [x for x in args[1:] if not x.startswith("-")]
    if len(a) != 2:
        return _err("usage: mv SOURCE DEST")
    src, dst = sh.abspath(a[0]), sh.abspath(a[1])
    node = sh.device.files.get(src)
    if node is None:
        return _err(f"mv: bad '{a[0]}': No such file or directory")
    if sh.device.is_dir(dst):
        dst = posixpath.join(dst, posixpath.basename(src))
    sh.device.files[dst] = sh.device.files.pop(src)
    return Result()


@applet("sh")
def _sh(sh: Shell, args: list[str], stdin: bytes) -> Result:
    if len(args) >= 3 and args[1] == "-c":
        inner = Shell(sh.device, sh.binaries)
        inner.env["USER"] = sh.env.get("USER", "shell")
        inner.cwd = sh.cwd
        return inner.run(args[2])
    return _err("/system/bin/sh: interactive shells are not supported here", 2)
