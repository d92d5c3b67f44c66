#!/usr/bin/env python3
"""Download the course's datasets.

    python datasets/get.py cifar10          # CIFAR-10, python version (163 MiB)
    python datasets/get.py coco             # CS231n COCO captioning features (about 1 GB)
    python datasets/get.py cifar10 --archive ~/Downloads/cifar-10-python.tar.gz

Files go to $COURSE_DATA_DIR when it is set, else to this folder (``--dest`` overrides
both), where ``course_utils.data`` looks for them. A download that stops half-way leaves a
``.part`` file; run the command again and it continues from there. The archive is checked
(CIFAR-10: its MD5; COCO: the zip's checksums and the HDF5 files inside) before anything is
unpacked, and it is unpacked into a temporary folder that is renamed into place only when
complete, so a failure never leaves a half-written dataset behind.

No network? Download the archive on another machine, copy it here and pass it with
``--archive``, or use the offline datasets: ``load_dataset('auto')`` in course_utils.data.

Only the Python standard library is used, so this runs before anything is installed.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

HERE = Path(__file__).resolve().parent

DATASETS = {
    "cifar10": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a",
        "archive": "cifar-10-python.tar.gz",  # relative to the destination folder
        "folder": "cifar-10-batches-py",
        "files": ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                  "data_batch_5", "test_batch", "batches.meta"],
    },
    "coco": {
        "url": "http://cs231n.stanford.edu/coco_captioning.zip",
        "md5": None,  # none published: the zip's CRCs and the HDF5 files are checked instead
        "archive": "cache/coco_captioning.zip",
        "folder": "coco_captioning",
        "files": ["coco2014_captions.h5", "coco2014_vocab.json", "train2014_urls.txt",
                  "val2014_urls.txt", "train2014_vgg16_fc7.h5", "train2014_vgg16_fc7_pca.h5",
                  "val2014_vgg16_fc7.h5", "val2014_vgg16_fc7_pca.h5"],
    },
}
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
CHUNK = 1 << 20


class Failure(Exception):
    """Stops the command with this message and a non-zero exit status."""


def say(msg):
    print(msg, file=sys.stderr, flush=True)


def default_dest() -> Path:
    env = os.environ.get("COURSE_DATA_DIR", "").strip()
    return Path(env).expanduser() if env else HERE


def md5sum(path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------ download
def _no_network_help(url, archive, name, reason):
    return (f"Could not download {url}: {reason}.\n"
            "If this machine has no internet access:\n"
            f"  - download {url} on a machine that has, copy it here and run\n"
            f"      python datasets/get.py {name} --archive PATH_TO_THE_FILE\n"
            f"    (or place it at {archive} and run this command again), or\n"
            "  - use the offline datasets, which need no download: in Python,\n"
            "      from course_utils.data import load_dataset; load_dataset('auto')\n"
            "    (and load_offline_captions() instead of COCO).")


def download(url, archive: Path, name, timeout=10.0):
    """Fetch url into archive, through archive + '.part', resuming a previous attempt.

    If a .part file exists we ask for the rest with an HTTP Range header; a server that
    answers 206 (Partial Content) sends only the rest, one that answers 200 ignored the
    header and sends everything, so we start the file again. ``timeout`` bounds the
    connection and every wait for data, so no network means a quick, clear failure.
    """
    part = archive.with_name(archive.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "course-utils-get/1.0"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the .part file is complete
            say(f"{part} is already complete.")
            part.replace(archive)
            return
        raise Failure(_no_network_help(url, archive, name, f"the server answered {exc.code} "
                                                           f"{exc.reason}")) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Failure(_no_network_help(url, archive, name, str(reason))) from exc

    with response:
        if have and response.status == 206:
            start = response.headers.get("Content-Range", "").replace("bytes", "").strip()
            if not start.startswith(f"{have}-"):
                part.unlink()
                raise Failure(f"The server resumed {url} at the wrong place "
                              f"(Content-Range: {start!r}); deleted {part}. Run the same "
                              "command again to start afresh.")
            mode, done = "ab", have
            say(f"Resuming {url} at {have / 1e6:.1f} MB.")
        else:
            if have:
                say("The server does not support resuming; starting the download again.")
            mode, done = "wb", 0
            say(f"Downloading {url}")
        length = response.headers.get("Content-Length")
        total = done + int(length) if length and length.isdigit() else None
        last_report = 0.0
        try:
            with open(part, mode) as f:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    f.write(block)
                    done += len(block)
                    if time.monotonic() - last_report > 2:
                        last_report = time.monotonic()
                        pct = f" ({100 * done / total:.0f}%)" if total else ""
                        say(f"  {done / 1e6:.1f} MB{pct}")
        except (OSError, http.client.HTTPException, ValueError) as exc:  # dropped, timed out
            raise Failure(f"The download of {url} stopped at {done / 1e6:.1f} MB ({exc}). "
                          f"Run the same command again to continue from {part}.") from exc
    if total is not None and done < total:
        raise Failure(f"The download of {url} stopped at {done} of {total} bytes. Run the "
                      f"same command again to continue from {part}.")
    part.replace(archive)
    say(f"Saved {archive} ({done / 1e6:.1f} MB).")


# ------------------------------------------------------------------------------ unpack
def _check_member_name(member_name, archive):
    p = PurePosixPath(member_name.replace("\\", "/"))
    if p.is_absolute() or member_name.startswith(("/", "\\")) or ".." in p.parts \
            or (p.parts and ":" in p.parts[0]):
        raise Failure(f"Refusing to unpack {archive}: it contains the entry {member_name!r}, "
                      "which would be written outside the destination folder. The file is "
                      "not the expected archive; delete it and download it again.")


def _extract_tar(archive: Path, into: Path):
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for m in members:
                _check_member_name(m.name, archive)
                if not (m.isfile() or m.isdir()):
                    raise Failure(f"Refusing to unpack {archive}: the entry {m.name!r} is a "
                                  "link or a device, which the dataset never contains.")
            for m in members:
                target = into / m.name
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(m) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
    except (tarfile.TarError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise Failure(f"Could not unpack {archive} ({exc}); the file is damaged. Delete it "
                      "and download it again.") from exc


def _extract_zip(archive: Path, into: Path):
    try:
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                _check_member_name(name, archive)
            bad = z.testzip()  # reads every member and checks its CRC-32
            if bad is not None:
                raise Failure(f"{archive} is damaged (the checksum of {bad} is wrong). Delete "
                              "it and download it again.")
            z.extractall(into)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise Failure(f"Could not unpack {archive} ({exc}); the file is damaged. Delete it "
                      "and download it again.") from exc


def _check_hdf5(folder: Path):
    """Every .h5 file must start with the HDF5 signature; opened with h5py when available."""
    for path in sorted(folder.glob("*.h5")):
        with open(path, "rb") as f:
            if f.read(8) != HDF5_SIGNATURE:
                raise Failure(f"{path.name} in the archive is not an HDF5 file; the archive is "
                              "not the expected one.")
        try:
            import h5py
        except ImportError:
            continue
        try:
            with h5py.File(path, "r") as f:
                list(f.keys())
        except OSError as exc:
            raise Failure(f"{path.name} in the archive cannot be opened ({exc}).") from exc


def unpack(archive: Path, dest: Path, spec):
    """Unpack into a temporary folder inside dest, check it, then rename it into place."""
    target = dest / spec["folder"]
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec['folder']}-unpacking-", dir=dest))
    try:
        say(f"Unpacking {archive}")
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, tmp)
        else:
            _extract_tar(archive, tmp)
        found = [p for p in tmp.rglob(spec["files"][0]) if p.is_file()]
        if not found:
            raise Failure(f"{archive} does not contain {spec['files'][0]}; it is not the "
                          f"{spec['folder']} archive.")
        inner = found[0].parent
        missing = [n for n in spec["files"] if not (inner / n).is_file()]
        if missing:
            raise Failure(f"{archive} is incomplete: {', '.join(missing)} missing. Delete it and "
                          "download it again.")
        if spec["folder"] == "coco_captioning":
            _check_hdf5(inner)
        if target.exists():  # --force: move the old copy aside; it goes with tmp below
            target.rename(tmp / "previous")
        inner.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"Ready: {target}")
    return target


# ------------------------------------------------------------------------------ command
def get(name, dest: Path, archive_arg=None, url=None, md5=None, timeout=10.0, force=False,
        keep_archive=True):
    spec = DATASETS[name]
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / spec["folder"]
    if target.is_dir() and not force:
        missing = [n for n in spec["files"] if not (target / n).is_file()]
        if not missing:
            say(f"{target} is already there; nothing to do (use --force to fetch it again).")
            return 0
        say(f"{target} is incomplete ({', '.join(missing)} missing); getting it again.")
    url = url or spec["url"]
    md5 = (md5 or spec["md5"] or "").lower() or None
    archive = dest / spec["archive"]
    ours = archive_arg is None  # files we downloaded may be deleted; the user's are not
    if archive_arg is not None:
        archive = Path(archive_arg).expanduser()
        if not archive.is_file():
            raise Failure(f"{archive} does not exist.")
    elif not archive.is_file():
        download(url, archive, name, timeout=timeout)

    if md5:
        say(f"Checking the MD5 of {archive}")
        actual = md5sum(archive)
        if actual != md5:
            if ours:
                archive.unlink()
                what = "It has been deleted; run the command again to download it afresh."
            else:
                what = "It was left in place; download it again."
            raise Failure(f"{archive} is damaged or not the right file: its MD5 is {actual}, "
                          f"expected {md5}. {what}")
    try:
        unpack(archive, dest, spec)
    except Failure as exc:
        if ours and archive.exists():
            archive.unlink()
            raise Failure(f"{exc} (The downloaded file {archive} has been deleted.)") from exc
        raise
    if ours and not keep_archive:
        archive.unlink()
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python datasets/get.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Offline instead? load_dataset('auto') and load_offline_captions() in "
               "course_utils.data need no download.")
    parser.add_argument("name", choices=sorted(DATASETS), help="which dataset")
    parser.add_argument("--archive", metavar="PATH",
                        help="install from an archive you downloaded yourself")
    parser.add_argument("--dest", metavar="DIR", type=Path, default=None,
                        help="where to put the data (default: $COURSE_DATA_DIR, else the "
                             "folder of this script)")
    parser.add_argument("--url", help="download from this address instead (a mirror)")
    parser.add_argument("--md5", help="expected MD5 of the archive (for a mirror's file)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="give up when connecting, or when no data arrives, for this "
                             "long (default 10)")
    parser.add_argument("--force", action="store_true",
                        help="fetch and unpack again even if the data is already there")
    parser.add_argument("--delete-archive", action="store_true",
                        help="delete the downloaded archive after unpacking it")
    args = parser.parse_args(argv)
    try:
        return get(args.name, args.dest or default_dest(), archive_arg=args.archive,
                   url=args.url, md5=args.md5, timeout=args.timeout, force=args.force,
                   keep_archive=not args.delete_archive)
    except Failure as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        say("Interrupted. Run the same command again to continue the download.")
        return 130


if __name__ == "__main__":
    sys.exit(main())
