"""data/download.py against a local HTTP server on 127.0.0.1: no test touches the internet."""
import hashlib
import http.server
import json
import os
import socket
import threading

import numpy as np
import pytest

from helpers import ROOT
import utils
from utils import UserError

from data import download


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the server's folder, honouring 'Range: bytes=N-' as a real source does."""

    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("Range")))
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, "rb") as handle:
            body = handle.read()
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            if start >= len(body):
                self.send_error(416)
                return
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def source(tmp_path, photo):
    """A folder in the sources' layout, a manifest for it, and a server serving it."""
    root = tmp_path / "server"
    files = {}
    for index in (1, 2):
        path = root / "data" / "kodak" / f"kodim0{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        utils.save_image(str(path), np.roll(photo, 5 * index, axis=0))
        files[f"kodim0{index}.png"] = path
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (400, 390, 3), dtype=np.uint8)
    tif = root / "testsets" / "McMaster" / "1.tif"
    tif.parent.mkdir(parents=True)
    import imagecodecs
    tif.write_bytes(imagecodecs.tiff_encode(frame))
    manifest = {
        "sources": {"release": "http://192.0.2.1/unused", "swinir": "http://192.0.2.1/unused"},
        "datasets": {
            "kodak": [{"source": "release", "path": f"data/kodak/{name}", "local": f"kodak/{name}",
                       "sha256": hashlib.sha256(path.read_bytes()).hexdigest()} for name, path in files.items()],
            "mcmaster": [{"source": "swinir", "path": "testsets/McMaster/1.tif", "local": "McMaster500/1.png",
                          "pixel_sha256": download.pixel_sha256(str(tif))}],
            "polyu": [],
        }}
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps(manifest))

    class Server(http.server.ThreadingHTTPServer):
        requests = []

    handler = lambda *args, **kwargs: RangeHandler(*args, directory=str(root), **kwargs)  # noqa: E731
    server = Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"root": root, "manifest": str(manifest_path), "server": server, "frame": frame,
           "url": f"http://127.0.0.1:{server.server_address[1]}", "dest": tmp_path / "data"}
    server.shutdown()
    server.server_close()


def run(source, *datasets):
    return download.main([*datasets, "--dest", str(source["dest"]), "--base_url", source["url"],
                          "--manifest", source["manifest"], "--timeout", "5"])


def test_download_verifies_places_and_crops(source):
    run(source, "kodak", "mcmaster")
    dest = source["dest"]
    for name in ("kodim01.png", "kodim02.png"):
        assert (dest / "kodak" / name).read_bytes() == (source["root"] / "data" / "kodak" / name).read_bytes()
    frame = utils._read_pixels(str(dest / "McMaster500" / "1.png"))
    np.testing.assert_array_equal(frame, source["frame"])  # TIFF -> PNG, pixels unchanged
    crop = utils._read_pixels(str(dest / "McMaster" / "1.png"))
    np.testing.assert_array_equal(crop, source["frame"][122:378, 122:378])
    assert not (dest / ".downloads").exists()
    # Everything in place: a second run asks the server for nothing.
    source["server"].requests.clear()
    assert download.download(["kodak", "mcmaster"], str(dest), source["url"], source["manifest"]) == {
        "kodak": 0, "mcmaster": 0}
    assert source["server"].requests == []


def test_checksum_mismatch_is_one_line_and_leaves_nothing(source):
    served = source["root"] / "data" / "kodak" / "kodim02.png"
    served.write_bytes(served.read_bytes()[:-10] + b"0123456789")  # the source changed
    with pytest.raises(download.ChecksumMismatch, match="kodim02.png: checksum mismatch"):
        run(source, "kodak")
    assert not (source["dest"] / "kodak" / "kodim02.png").exists()
    assert (source["dest"] / "kodak" / "kodim01.png").exists()  # the good file before it stays
    leftovers = [name for _, _, names in os.walk(source["dest"] / ".downloads") for name in names]
    assert leftovers == []


def test_truncated_download_resumes_from_its_partial_file(source):
    served = (source["root"] / "data" / "kodak" / "kodim01.png").read_bytes()
    staging = source["dest"] / ".downloads" / "release" / "data" / "kodak" / "kodim01.png.part"
    staging.parent.mkdir(parents=True)
    staging.write_bytes(served[:len(served) // 3])  # a download killed a third of the way
    run(source, "kodak")
    assert (source["dest"] / "kodak" / "kodim01.png").read_bytes() == served
    assert ("/data/kodak/kodim01.png", f"bytes={len(served) // 3}-") in source["server"].requests


def test_server_absent_is_one_line(source, tmp_path):
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UserError, match=r"cannot reach 127\.0\.0\.1:\d+ .*offline"):
        download.main(["kodak", "--dest", str(tmp_path / "d"), "--base_url", f"http://127.0.0.1:{port}",
                       "--manifest", source["manifest"], "--timeout", "5"])
    assert not (tmp_path / "d" / "kodak").exists()


def test_command_line_mistakes(source):
    with pytest.raises(UserError, match="unknown dataset sidd"):
        download.main(["sidd"])
    with pytest.raises(UserError, match="name the datasets"):
        download.main([])


@pytest.mark.parametrize("flag, value", [("--base_url", "notaurl"), ("--base_url", "ftp://host/x"),
                                         ("--timeout", "0"), ("--timeout", "nan"), ("--dest", "a_file/below")])
def test_a_bad_flag_is_refused_naming_it_before_anything_is_written(source, tmp_path, flag, value):
    (tmp_path / "a_file").write_text("not a folder")
    values = {"--dest": str(tmp_path / "d"), "--base_url": source["url"], "--timeout": "5",
              flag: str(tmp_path / value) if flag == "--dest" else value}
    with pytest.raises(UserError, match=flag):
        download.main(["kodak", *[word for pair in values.items() for word in pair], "--manifest", source["manifest"]])
    assert not (tmp_path / "d").exists() and (tmp_path / "a_file").read_text() == "not a folder"
    assert source["server"].requests == []


def test_the_project_manifest_matches_the_shared_copies():
    manifest = download.read_manifest()
    assert {name: len(entries) for name, entries in manifest["datasets"].items()} == {
        "kodak": 24, "mcmaster": 18, "polyu": 80}
    shared = os.path.join(ROOT, "..", "shared", "data")
    if not os.path.isdir(shared):
        pytest.skip("no shared data on this machine")
    for entry in manifest["datasets"]["kodak"][:3] + manifest["datasets"]["polyu"][:3]:
        assert utils.file_sha256(os.path.join(shared, entry["local"])) == entry["sha256"]
