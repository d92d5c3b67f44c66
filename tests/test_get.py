"""Tests of datasets/get.py, the download command, against a small local web server."""
import hashlib
import http.server
import io
import json
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
GET = REPO / "datasets" / "get.py"
CIFAR_FILES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
               "test_batch", "batches.meta"]


def run_get(*args, timeout=60):
    """Run the command as a user would; returns (exit status, stderr + stdout, seconds)."""
    start = time.monotonic()
    p = subprocess.run([sys.executable, str(GET), *map(str, args)], capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stderr + p.stdout, time.monotonic() - start


def md5(b):
    return hashlib.md5(b).hexdigest()


def tar_gz(entries):
    """A .tar.gz in memory from {name: bytes}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def fake_cifar_archive(size=4000):
    """The CIFAR-10 archive's layout with random contents: get.py only checks the names.
    `size` bytes per file; random bytes do not compress, so the archive is about 7 x size."""
    rng = np.random.default_rng(0)
    return tar_gz({f"cifar-10-batches-py/{n}": rng.bytes(size) for n in CIFAR_FILES})


def leftovers(dest):
    """Everything get.py may have left in dest besides the finished archive."""
    return sorted(p.name for p in Path(dest).iterdir() if p.name != "cifar-10-python.tar.gz")


# --------------------------------------------------------------------------------------
# A web server that can honour or ignore Range requests and can hang up half-way
# --------------------------------------------------------------------------------------
class Server:
    def __init__(self, body):
        self.body = body
        self.honour_range = True
        self.hang_up_after = None   # bytes to send before closing the connection
        self.requests = []          # the Range header of every request (None when absent)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append(rng)
                start = 0
                if rng and server.honour_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(server.body):
                        self.send_response(416)
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(server.body) - 1}/{len(server.body)}")
                else:
                    self.send_response(200)
                payload = server.body[start:]
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if server.hang_up_after is not None:
                    payload = payload[:server.hang_up_after]
                self.wfile.write(payload)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/cifar-10-python.tar.gz"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def archive():
    return fake_cifar_archive()


@pytest.fixture
def server(archive):
    s = Server(archive)
    yield s
    s.close()


def test_download_checks_md5_and_unpacks_into_place(tmp_path, server, archive):
    rc, out, _ = run_get("cifar10", "--dest", tmp_path, "--url", server.url, "--md5", md5(archive))
    assert rc == 0, out
    assert sorted(p.name for p in (tmp_path / "cifar-10-batches-py").iterdir()) == sorted(CIFAR_FILES)
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == archive
    assert leftovers(tmp_path) == ["cifar-10-batches-py"]  # no .part, no temporary folder
    rc, out, _ = run_get("cifar10", "--dest", tmp_path, "--url", server.url)
    assert rc == 0 and "nothing to do" in out and len(server.requests) == 1


def test_download_resumes_a_partial_file_with_a_range_request(tmp_path, server, archive):
    half = len(archive) // 2
    (tmp_path / "cifar-10-python.tar.gz.part").write_bytes(archive[:half])
    rc, out, _ = run_get("cifar10", "--dest", tmp_path, "--url", server.url, "--md5", md5(archive))
    assert rc == 0, out
    assert server.requests == [f"bytes={half}-"]
    assert "Resuming" in out
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == archive


def test_download_starts_again_when_the_server_ignores_range(tmp_path, server, archive):
    server.honour_range = False
    # junk in the .part file: appending to it would break the checksum
    (tmp_path / "cifar-10-python.tar.gz.part").write_bytes(b"junk" * 500)
    rc, out, _ = run_get("cifar10", "--dest", tmp_path, "--url", server.url, "--md5", md5(archive))
    assert rc == 0, out
    assert server.requests == ["bytes=2000-"] and "does not support resuming" in out
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == archive


def test_an_interrupted_download_keeps_its_part_file_and_the_next_run_finishes(
        tmp_path, server, archive):
    server.hang_up_after = 10000
    rc, out, _ = run_get("cifar10", "--dest", tmp_path, "--url", server.url, "--md5", md5(archive))
    assert rc != 0 and "Run the same command again" in out
    part = tmp_path / "cifar-10-python.tar.gz.part"
    assert part.stat().st_size == 10000
    assert not (tmp_path / "cifar-10-batches-py").exists()
    server.hang_up_after = None
    rc, out, _ = run_get("cifar10", "--dest", tmp_path, "--url", server.url, "--md5", md5(archive))
    assert rc == 0, out
    assert server.requests == [None, "bytes=10000-"]
    assert (tmp_path / "cifar-10-batches-py" / "test_batch").is_file()


def test_a_complete_part_file_is_accepted_when_the_server_has_nothing_left(
        tmp_path, server, archive):
    (tmp_path / "cifar-10-python.tar.gz.part").write_bytes(archive)
    rc, out, _ = run_get("cifar10", "--dest", tmp_path, "--url", server.url, "--md5", md5(archive))
    assert rc == 0, out
    assert (tmp_path / "cifar-10-batches-py").is_dir()


def test_wrong_checksum_deletes_the_download_and_says_so(tmp_path, server):
    rc, out, _ = run_get("cifar10", "--dest", tmp_path, "--url", server.url)  # the real MD5
    assert rc == 1
    assert "c58f30108f718f92721af3b95e74349a" in out and "deleted" in out
    assert list(tmp_path.iterdir()) == []  # no archive, no .part, no dataset folder


def test_no_network_fails_fast_with_what_to_do(tmp_path):
    # port 9 (discard) on this machine: nothing listens there, the connection is refused
    rc, out, seconds = run_get("cifar10", "--dest", tmp_path, "--url",
                               "http://127.0.0.1:9/cifar-10-python.tar.gz")
    assert rc == 1
    assert seconds < 10  # the brief: a missing network must not hang a student's notebook
    assert "--archive" in out and str(tmp_path / "cifar-10-python.tar.gz") in out
    assert "load_dataset('auto')" in out
    assert not (tmp_path / "cifar-10-batches-py").exists()


def test_a_server_that_never_answers_times_out(tmp_path):
    with socket.socket() as listener:  # accepts connections (backlog) but never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/x.tar.gz"
        rc, out, seconds = run_get("cifar10", "--dest", tmp_path, "--url", url, "--timeout", 1)
    assert rc == 1 and "timed out" in out and "--archive" in out
    assert seconds < 8  # a 1 s timeout plus the interpreter's start-up


# --------------------------------------------------------------------------------------
# --archive: installing a file the user downloaded
# --------------------------------------------------------------------------------------
def test_archive_option_installs_a_hand_downloaded_file(tmp_path, archive):
    path = tmp_path / "my download.tar.gz"
    path.write_bytes(archive)
    dest = tmp_path / "data"
    rc, out, _ = run_get("cifar10", "--dest", dest, "--archive", path, "--md5", md5(archive))
    assert rc == 0, out
    assert (dest / "cifar-10-batches-py" / "batches.meta").is_file()
    assert path.exists()  # the user's file stays


def test_wrong_checksum_of_the_users_archive_is_reported_but_not_deleted(tmp_path, archive):
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(archive)
    rc, out, _ = run_get("cifar10", "--dest", tmp_path / "data", "--archive", path)
    assert rc == 1 and "MD5" in out and "left in place" in out
    assert path.exists() and not (tmp_path / "data" / "cifar-10-batches-py").exists()


@pytest.mark.parametrize("bad_name", ["../escaped", "cifar-10-batches-py/../../escaped",
                                      "/tmp/escaped-absolute"])
def test_archive_entries_outside_the_folder_are_refused_and_nothing_is_left(tmp_path, bad_name):
    entries = {f"cifar-10-batches-py/{n}": b"x" for n in CIFAR_FILES}
    entries[bad_name] = b"evil"
    blob = tar_gz(entries)
    path = tmp_path / "evil.tar.gz"
    path.write_bytes(blob)
    dest = tmp_path / "data"
    rc, out, _ = run_get("cifar10", "--dest", dest, "--archive", path, "--md5", md5(blob))
    assert rc == 1 and "Refusing" in out and repr(bad_name) in out
    assert list(dest.iterdir()) == []  # no dataset folder, no temporary folder
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/escaped-absolute").exists()


def test_archive_with_a_symlink_is_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for n in CIFAR_FILES:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{n}")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        link = tarfile.TarInfo("cifar-10-batches-py/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    path = tmp_path / "link.tar.gz"
    path.write_bytes(buf.getvalue())
    rc, out, _ = run_get("cifar10", "--dest", tmp_path / "data", "--archive", path, "--md5",
                         md5(buf.getvalue()))
    assert rc == 1 and "link" in out
    assert list((tmp_path / "data").iterdir()) == []


def test_truncated_archive_fails_cleanly(tmp_path):
    blob = fake_cifar_archive()[:15000]  # cut inside the third member
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(blob)
    rc, out, _ = run_get("cifar10", "--dest", tmp_path / "data", "--archive", path,
                         "--md5", md5(blob))
    assert rc == 1 and "damaged" in out
    assert list((tmp_path / "data").iterdir()) == []


def test_archive_missing_a_batch_is_refused(tmp_path):
    blob = tar_gz({f"cifar-10-batches-py/{n}": b"x" for n in CIFAR_FILES[1:]})
    path = tmp_path / "short.tar.gz"
    path.write_bytes(blob)
    rc, out, _ = run_get("cifar10", "--dest", tmp_path / "data", "--archive", path,
                         "--md5", md5(blob))
    assert rc == 1
    assert "data_batch_1" in out
    assert list((tmp_path / "data").iterdir()) == []


def test_force_replaces_an_existing_folder(tmp_path, archive):
    path = tmp_path / "a.tar.gz"
    path.write_bytes(archive)
    dest = tmp_path / "data"
    (dest / "cifar-10-batches-py").mkdir(parents=True)
    (dest / "cifar-10-batches-py" / "stale").write_text("old")
    rc, out, _ = run_get("cifar10", "--dest", dest, "--archive", path, "--md5", md5(archive),
                         "--force")
    assert rc == 0, out
    assert sorted(p.name for p in (dest / "cifar-10-batches-py").iterdir()) == sorted(CIFAR_FILES)
    assert [p.name for p in dest.iterdir()] == ["cifar-10-batches-py"]


def test_get_uses_COURSE_DATA_DIR_by_default(tmp_path, archive):
    import os

    path = tmp_path / "a.tar.gz"
    path.write_bytes(archive)
    env = {**os.environ, "COURSE_DATA_DIR": str(tmp_path / "elsewhere")}
    p = subprocess.run([sys.executable, str(GET), "cifar10", "--archive", str(path), "--md5",
                        md5(archive)], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "elsewhere" / "cifar-10-batches-py" / "data_batch_5").is_file()


# --------------------------------------------------------------------------------------
# COCO
# --------------------------------------------------------------------------------------
COCO_FILES = ["coco2014_captions.h5", "coco2014_vocab.json", "train2014_urls.txt",
              "val2014_urls.txt", "train2014_vgg16_fc7.h5", "train2014_vgg16_fc7_pca.h5",
              "val2014_vgg16_fc7.h5", "val2014_vgg16_fc7_pca.h5"]


def fake_coco_zip(tmp_path, h5_ok=True):
    """A zip in the layout of coco_captioning.zip, with tiny real HDF5 files."""
    import h5py

    src = tmp_path / "src"
    src.mkdir()
    for name in COCO_FILES:
        if name.endswith(".h5"):
            with h5py.File(src / name, "w") as f:
                f["features" if "fc7" in name else "train_captions"] = np.ones((2, 3))
        else:
            (src / name).write_text(json.dumps({"idx_to_word": []}) if name.endswith("json")
                                    else "http://example.org/a.jpg\n")
    if not h5_ok:
        (src / "coco2014_captions.h5").write_bytes(b"this is not an HDF5 file")
    path = tmp_path / "coco_captioning.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name in COCO_FILES:
            z.write(src / name, f"coco_captioning/{name}")
    return path


def test_coco_archive_is_checked_and_unpacked(tmp_path):
    path = fake_coco_zip(tmp_path)
    dest = tmp_path / "data"
    rc, out, _ = run_get("coco", "--dest", dest, "--archive", path)
    assert rc == 0, out
    assert sorted(p.name for p in (dest / "coco_captioning").iterdir()) == sorted(COCO_FILES)


def test_coco_archive_with_a_broken_hdf5_file_is_refused(tmp_path):
    path = fake_coco_zip(tmp_path, h5_ok=False)
    dest = tmp_path / "data"
    rc, out, _ = run_get("coco", "--dest", dest, "--archive", path)
    assert rc == 1 and "coco2014_captions.h5" in out and "not an HDF5 file" in out
    assert list(dest.iterdir()) == []


def test_coco_download_goes_through_the_same_machinery(tmp_path):
    blob = fake_coco_zip(tmp_path).read_bytes()
    server = Server(blob)
    try:
        (tmp_path / "data" / "cache").mkdir(parents=True)
        (tmp_path / "data" / "cache" / "coco_captioning.zip.part").write_bytes(blob[:1000])
        rc, out, _ = run_get("coco", "--dest", tmp_path / "data", "--url", server.url)
    finally:
        server.close()
    assert rc == 0, out
    assert server.requests == ["bytes=1000-"]
    assert (tmp_path / "data" / "coco_captioning" / "coco2014_vocab.json").is_file()


def test_zip_entries_outside_the_folder_are_refused(tmp_path):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("coco_captioning/coco2014_captions.h5", b"x")
        z.writestr("../escaped", b"evil")
    rc, out, _ = run_get("coco", "--dest", tmp_path / "data", "--archive", path)
    assert rc == 1 and "Refusing" in out
    assert list((tmp_path / "data").iterdir()) == []
