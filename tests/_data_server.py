"""Helpers for the data tests: a 127.0.0.1 HTTP server and small registries written to tmp_path."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
import time
from pathlib import Path

import numpy as np

import grainbench.data.registry as registry

REPO = Path(__file__).resolve().parent.parent
# The real files, when the checkout has shared/ beside it (CI and developer machines); tests skip otherwise.
SHARED_TBM = Path(os.environ.get("GRAINBENCH_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data" / "tbm"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Server:
    """A threaded HTTP server on an ephemeral port.

    ``files`` maps URL paths (no leading slash) to bytes; ``root`` serves a
    folder for other paths. ``mode`` maps a URL path to a misbehaviour:
    ``"short"`` (announces more bytes than it sends, then closes), ``"slow"``
    (sleeps before answering), ``"fail-once"`` (500 on the first request).
    """

    def __init__(self, root: Path | None = None):
        self.files: dict[str, bytes] = {}
        self.mode: dict[str, str] = {}
        self.root = root
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                path = self.path.lstrip("/")
                server.requests.append(path)
                mode = server.mode.get(path)
                if mode == "slow":
                    time.sleep(2.0)
                if mode == "fail-once":
                    server.mode.pop(path)
                    self.send_error(500)
                    return
                data = server.files.get(path)
                if data is None and server.root is not None:
                    p = (server.root / path).resolve()
                    if p.is_file() and server.root.resolve() in p.parents:
                        data = p.read_bytes()
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    if mode == "short":
                        self.wfile.write(data[: len(data) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def __enter__(self) -> "Server":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def toml_value(v) -> str:
    from grainbench.data.cache import toml_value

    return toml_value(v)


def write_registry(path: Path, entries: dict[str, dict]) -> Path:
    """Write a registry with ``entries`` (name -> fields) and return its path."""
    lines = ["schema = 1", ""]
    for name, e in entries.items():
        lines.append(f"[datasets.{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in e.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    registry._CACHE.clear()
    return path


def entry(**overrides) -> dict:
    """A valid https entry of two files; override any field."""
    base = {
        "title": "Test data", "task": "boundary", "serial": False, "modality": "test",
        "licence": "MIT", "citation": "none", "homepage": "https://example.invalid/", "source": "https",
        "base_url": "http://127.0.0.1:9/", "files": [],
        "layout": {"kind": "pairs", "image_dir": "images", "mask_dir": "masks"},
        "splits": {"all": {"dir": ""}},
    }
    base.update(overrides)
    return base


def png_bytes(arr: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def pair_folder(root: Path, n: int = 5, size: int = 32, rgb: bool = True, seed: int = 0) -> Path:
    """A folder images/ + masks/ of ``n`` pairs: RGB images, masks with a thick cross (boundary > 127)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        img = rng.integers(0, 256, (size, size, 3) if rgb else (size, size), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        mask[size // 2 - 1: size // 2 + 2, :] = 255
        mask[:, size // 3 - 1: size // 3 + 2] = 255
        (root / "images" / f"p{i:02d}.png").write_bytes(png_bytes(img))
        (root / "masks" / f"p{i:02d}.png").write_bytes(png_bytes(mask))
    return root


def fake_pure_iron(path: Path, shape=(16, 12, 296), *, keys=("image", "label", "boundary"),
                   boundary_dtype=np.uint8, boundary_high=255, seed: int = 0) -> Path:
    """A small HDF5 with the pure-iron layout: axes (H, W, Z), boundary 0/255, integer labels."""
    import h5py

    rng = np.random.default_rng(seed)
    h, w, z = shape
    boundary = np.zeros(shape, boundary_dtype)
    boundary[h // 2, :, :] = boundary_high
    boundary[:, w // 2, :] = boundary_high
    label = np.ones(shape, np.int32)
    label[h // 2:, :, :] = 2
    label[:, w // 2:, :] += 2
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    with h5py.File(path, "w") as f:
        for k, arr in zip(("image", "label", "boundary"), (image, label, boundary)):
            if k in keys:
                f.create_dataset(keys[keys.index(k)], data=arr)
    return path
