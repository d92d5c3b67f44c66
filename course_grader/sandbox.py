"""The OS sandbox a submission's kernel runs in (Linux namespaces, no root needed).

A graded kernel runs code written by a student, with the grader's user id. Whatever the
notebook does, inside the sandbox:

- the file system is a read-only view of the system (/usr, the loader's files in /etc), the
  Python installation, the virtual environment and the learning-code snapshot of this job,
  and nothing else: the repository, solutions/, the course's gradebook, other students'
  files and the grader's home do not exist there;
- the only writable places are the kernel's working folder (also HOME and /tmp, tmpfs with a
  size cap, so filling "the disk" fills only that) and the folder of the kernel's Unix
  sockets (watched by the job, see execute.py);
- it has its own PID namespace (it sees only its own processes, and all of them die with
  it), its own network namespace (no network: the kernel talks to the grader over Unix
  sockets), no capabilities, no new privileges and a new session;
- the number of processes is capped: a pids cgroup when the grader is root and may create
  one, otherwise RLIMIT_NPROC in the launcher.

Tools: bubblewrap (`bwrap`, what Flatpak uses), else `unshare` and `setpriv` from
util-linux with a small mount script. `detect()` says which works here, and why not.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

# Files of /etc a Python process may need (dynamic loader, time zone, user names, fonts).
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "passwd",
             "group", "nsswitch.conf", "fonts", "ssl", "mime.types", "alternatives")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
CGROUP_PREFIX = "course-grader-"
HOW_TO_GET_ISOLATION = (
    "Student code must run isolated. On Debian/Ubuntu: `sudo apt-get install bubblewrap` "
    "(on Ubuntu 24.04 bubblewrap's AppArmor profile allows the user namespaces it needs); "
    "on Fedora/Arch: install the `bubblewrap` package. On macOS or Windows, grade inside a "
    "Linux VM or container (docs/grading.md). To grade without isolation anyway (trusted "
    "submissions only), pass --no-isolation.")


class SandboxUnavailable(RuntimeError):
    """Neither bubblewrap nor unshare can build the sandbox on this machine."""


@dataclass
class Isolation:
    """How kernels are isolated on this machine: 'bwrap', 'unshare' or 'none'."""

    method: str
    why_not: list[str] = field(default_factory=list)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _pids_cgroup_root() -> tuple[Path, str] | None:
    """A cgroup folder where this process may create children with a pids limit."""
    if not _is_root():
        return None
    v1 = Path("/sys/fs/cgroup/pids")
    if (v1 / "cgroup.procs").exists() and os.access(v1, os.W_OK):
        return v1, "v1"
    v2 = Path("/sys/fs/cgroup")
    controllers = v2 / "cgroup.subtree_control"
    if controllers.exists() and os.access(v2, os.W_OK) and "pids" in controllers.read_text():
        return v2, "v2"
    return None


def _python_roots() -> list[str]:
    """The folders the kernel's Python needs: the installation and the environment."""
    roots = {str(Path(sys.base_prefix).resolve()), str(Path(sys.prefix).resolve())}
    exe = Path(sys.executable).resolve()
    roots.add(str(exe.parent.parent))
    return sorted(r for r in roots if not any(r != o and r.startswith(o + "/") for o in roots))


def _probe(argv: list[str]) -> str | None:
    """Run `true`-like Python in a would-be sandbox; None when it works, else the error."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if out.returncode == 0 and out.stdout.strip() == "sandboxed":
        return None
    return (out.stderr.strip() or out.stdout.strip() or f"exit {out.returncode}")[:300]


_DETECTED: Isolation | None = None


def why_not(method: str) -> str | None:
    """None when `method` ('bwrap' or 'unshare') builds a working sandbox here, else why not."""
    tools = ["bwrap"] if method == "bwrap" else ["unshare", "setpriv"]
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        return f"{' and '.join(missing)} not installed"
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"course-sandbox-probe-{uuid.uuid4().hex}"
    scratch.mkdir(parents=True)
    try:
        sandbox = Sandbox(method, workdir=scratch / "w", rwdirs=[], rodirs=[])
        error = _probe(sandbox.wrap([sys.executable, "-I", "-c", "print('sandboxed')"]))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return None if error is None else f"{tools[0]} failed: {error}"


def detect(refresh: bool = False) -> Isolation:
    """Which sandbox works on this machine (tried for real, once per process)."""
    global _DETECTED
    if _DETECTED is not None and not refresh:
        return _DETECTED
    if not sys.platform.startswith("linux"):
        _DETECTED = Isolation("none", [f"{sys.platform} has no Linux namespaces"])
        return _DETECTED
    reasons = []
    for method in ("bwrap", "unshare"):
        reason = why_not(method)
        if reason is None:
            _DETECTED = Isolation(method, reasons)
            return _DETECTED
        reasons.append(reason)
    _DETECTED = Isolation("none", reasons)
    return _DETECTED


@dataclass
class Sandbox:
    """One kernel's sandbox: what it may read, where it may write, and its caps.

    workdir:  the kernel's working folder, HOME and TMPDIR: a fresh tmpfs of `disk_mb` there
    rwdirs:   host folders bound writable at the same path (the kernel's socket folder)
    rodirs:   host folders bound read-only at the same path (the learning-code snapshot)
    robinds:  (host path, path inside) pairs bound read-only (data sets)
    """

    method: str
    workdir: Path
    rwdirs: list[Path]
    rodirs: list[Path]
    robinds: list[tuple[Path, Path]] = field(default_factory=list)
    disk_mb: int = 512
    max_processes: int = 256
    cgroup: Path | None = None
    group_tag: str = ""  # names this batch's cgroups, so a later batch can sweep them

    # ---- the command -------------------------------------------------------------------
    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` run inside the sandbox (as a process list for subprocess/jupyter_client)."""
        if self.method == "bwrap":
            inner = self._bwrap(argv)
        elif self.method == "unshare":
            inner = self._unshare(argv)
        elif self.method == "none":
            inner = list(argv)
        else:
            raise ValueError(f"unknown sandbox method {self.method!r}")
        if self.cgroup is not None:
            # Join the job's pids cgroup first, so every process of the sandbox counts.
            inner = ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"',
                     str(self.cgroup)] + inner
        return inner

    @staticmethod
    def _system_paths() -> list[str]:
        """The system and Python paths every kernel reads."""
        paths = [p for p in SYSTEM_DIRS if os.path.lexists(p)]
        paths += [f"/etc/{name}" for name in ETC_FILES if os.path.lexists(f"/etc/{name}")]
        return paths + _python_roots()

    def _bwrap(self, argv):
        cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session",
               "--cap-drop", "ALL", "--dev", "/dev", "--proc", "/proc",
               "--size", str(self.disk_mb << 20), "--tmpfs", "/tmp"]
        # The job's own folders may lie below /tmp: they are mounted after the sandbox's /tmp.
        for path in self._system_paths() + [str(p) for p in self.rodirs]:
            if os.path.islink(path):  # /bin -> usr/bin on merged-/usr systems
                cmd += ["--symlink", os.readlink(path), path]
            else:
                cmd += ["--ro-bind", path, path]
        cmd += ["--size", str(self.disk_mb << 20), "--tmpfs", str(self.workdir)]
        for host, inside in self.robinds:
            cmd += ["--ro-bind", str(host), str(inside)]
        for path in self.rwdirs:
            cmd += ["--bind", str(path), str(path)]
        cmd += ["--chdir", str(self.workdir), "--"]
        return cmd + list(argv)

    def _unshare(self, argv):
        """The same sandbox with util-linux: a new root of bind mounts, then chroot.

        `unshare` gives user, mount, PID and network namespaces (--kill-child ends them all
        with it); the script mounts the read-only view on a tmpfs, chroots into it and drops
        every capability with `setpriv` before it runs the kernel.
        """
        root = "/tmp/.course-sandbox-root"  # inside the new mount namespace only
        size = f"size={self.disk_mb}m"
        lines = ["set -e", f"R={root}", "mkdir -p $R", "mount -t tmpfs -o size=64m none $R"]

        def bind(src, dst, ro):
            kind = "-d" if os.path.isdir(src) else "-f"
            make = f"mkdir -p $R{dst}" if kind == "-d" else \
                f"mkdir -p $R{os.path.dirname(dst)} && touch $R{dst}"
            out = [make, f"mount --rbind {shlex.quote(src)} $R{shlex.quote(dst)}"]
            if ro:
                out.append(f"mount -o remount,bind,ro $R{shlex.quote(dst)}")
            return out

        for path in self._system_paths():
            if os.path.islink(path):
                lines.append(f"ln -s {shlex.quote(os.readlink(path))} $R{shlex.quote(path)}")
            else:
                lines += bind(path, path, ro=True)
        lines += ["mkdir -p $R/tmp $R/dev $R/proc", f"mount -t tmpfs -o {size} none $R/tmp",
                  "for d in null zero full random urandom tty; do touch $R/dev/$d; "
                  "mount --bind /dev/$d $R/dev/$d; done",
                  "mount -t proc proc $R/proc",
                  f"mkdir -p $R{shlex.quote(str(self.workdir))}",
                  f"mount -t tmpfs -o {size} none $R{shlex.quote(str(self.workdir))}"]
        for path in self.rodirs:
            lines += bind(str(path), str(path), ro=True)
        for host, inside in self.robinds:
            lines += bind(str(host), str(inside), ro=True)
        for path in self.rwdirs:
            lines += bind(str(path), str(path), ro=False)
        lines.append("mount -o remount,bind,ro $R")
        lines.append(f'cd $R && exec chroot $R /bin/sh -c \'cd "$0" && exec setpriv '
                     '--bounding-set=-all --inh-caps=-all --no-new-privs -- "$@"\' '
                     f'{shlex.quote(str(self.workdir))} "$@"')
        script = "\n".join(lines)
        return ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--net", "--ipc",
                "--uts", "--fork", "--kill-child", "--", "/bin/sh", "-c", script, "sandbox"] \
            + list(argv)

    # ---- the process cap ---------------------------------------------------------------
    def make_cgroup(self) -> Path | None:
        """Create this kernel's pids cgroup (root only); None where that is not possible."""
        found = _pids_cgroup_root()
        if found is None:
            return None
        base, version = found
        group = base / f"{CGROUP_PREFIX}{self.group_tag}-{uuid.uuid4().hex[:12]}"
        try:
            group.mkdir()
            (group / "pids.max").write_text(str(self.max_processes))
        except OSError:
            return None
        self.cgroup = group
        return group

    def remove_cgroup(self) -> None:
        """End whatever is left in the cgroup and remove it."""
        group, self.cgroup = self.cgroup, None
        if group is not None:
            remove_cgroup(group)


def sweep_cgroups(tag: str) -> int:
    """Remove the cgroups a killed batch with this tag left behind; returns how many."""
    found = _pids_cgroup_root()
    if found is None or not tag:
        return 0
    stale = list(found[0].glob(f"{CGROUP_PREFIX}{tag}-*"))
    for group in stale:
        remove_cgroup(group)
    return len(stale)


def remove_cgroup(group: Path) -> None:
    """Kill what is left in a cgroup, then remove it."""
    import signal
    import time

    for _ in range(50):
        try:
            pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            group.rmdir()
            return
        except OSError:
            time.sleep(0.1)
