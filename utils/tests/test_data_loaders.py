"""Tests of utils/data_loaders.py, all offline.

The real-format loaders are tested on tiny files written here in the real
formats (idx, pickled CIFAR batches in a tar.gz, the IMDB tar layout, JPEG
folders), so the suite needs neither the network nor the shared data. Every
test runs with the download cache redirected into tmp_path and with the
network fetch replaced by one that fails, so nothing can leave the machine or
write into the repository. The optional tests at the end read the real
datasets when a local copy exists (``shared_data`` fixture), and are skipped
otherwise.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import pickle
import stat
import subprocess
import sys
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest

import utils.data_loaders as dl

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL_FETCH = dl._fetch  # kept before the autouse fixture replaces it


# --------------------------------------------------------------------------------------
# Fixtures and writers of tiny files in the real formats
# --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def offline_cache(tmp_path, monkeypatch) -> Path:
    """Every test: downloads go to tmp_path/cache, and the network is unreachable."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("MI_DATA_ROOT", str(cache))

    def no_network(url, dest):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(dl, "_fetch", no_network)
    return cache


@pytest.fixture
def no_checksums(monkeypatch):
    """The tiny test files carry the official names but not the official bytes."""
    monkeypatch.setattr(dl, "KNOWN_CHECKSUMS", {})


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """The idx format: big-endian int32 magic, one big-endian int32 per dimension, raw bytes."""
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


MNIST_STEMS = {
    "train_images": ("train-images-idx3-ubyte", 2051),
    "train_labels": ("train-labels-idx1-ubyte", 2049),
    "test_images": ("t10k-images-idx3-ubyte", 2051),
    "test_labels": ("t10k-labels-idx1-ubyte", 2049),
}


def write_mnist(root: Path, *, gz: bool = True, n_train: int = 5, n_test: int = 3) -> dict:
    """A few MNIST records in idx format under root/MNIST/raw; returns the arrays written."""
    rng = np.random.default_rng(1)
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    arrays["train_images"][0, 0, :3] = [0, 255, 128]  # known pixels: 0, 1 and 128/255
    for key, (stem, magic) in MNIST_STEMS.items():
        data = idx_bytes(arrays[key], magic)
        name = stem + ".gz" if gz else stem
        write_bytes(root / "MNIST" / "raw" / name, gzip.compress(data) if gz else data)
    return arrays


def tar_with(path: Path, members: dict[str, bytes]) -> Path:
    """A tar.gz holding ``members`` (name -> bytes), in the given order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def cifar_members(n_per_batch: int = 2) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    """Pickled CIFAR batches like the real ones: {b'data': (N, 3072) uint8, b'labels': [...]}."""
    rng = np.random.default_rng(2)
    members, raw = {}, {}
    for i, name in enumerate(CIFAR_BATCHES):
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n_per_batch)]
        if i == 0:
            # one known pixel of image 0: row 1, column 2 is (R, G, B) = (200, 100, 50).
            # A row stores the red plane, then green, then blue; each plane is 32x32 row-major.
            data[0, 0 * 1024 + 1 * 32 + 2] = 200
            data[0, 1 * 1024 + 1 * 32 + 2] = 100
            data[0, 2 * 1024 + 1 * 32 + 2] = 50
        raw[name] = (data, np.array(labels))
        batch = {b"batch_label": name.encode(), b"data": data, b"labels": labels}
        members[f"cifar-10-batches-py/{name}"] = pickle.dumps(batch, protocol=2)
    meta = {b"label_names": [c.encode() for c in dl.CIFAR10_CLASSES]}
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps(meta, protocol=2)
    return members, raw


def cifar_reference(raw: dict, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Independent decoding of the rows: pixel (i, j) channel c = row[c*1024 + i*32 + j]."""
    images, labels = [], []
    for name in names:
        data, lab = raw[name]
        img = np.empty((len(data), 32, 32, 3), dtype=np.uint8)
        for c in range(3):
            img[..., c] = data[:, c * 1024 : (c + 1) * 1024].reshape(-1, 32, 32)
        images.append(img)
        labels.append(lab)
    return np.concatenate(images), np.concatenate(labels)


IMDB_REVIEWS = {  # path inside the archive -> text; listed out of order on purpose
    "aclImdb/train/pos/1_7.txt": "Second positive review.",
    "aclImdb/test/neg/1_3.txt": "Dull.",
    "aclImdb/train/unsup/0_0.txt": "Unlabelled, must be ignored.",
    "aclImdb/train/neg/0_2.txt": "Boring <br />film.",
    "aclImdb/README": "readme",
    "aclImdb/imdb.vocab": "the\nfilm\n",
    "aclImdb/train/pos/0_9.txt": "Caf\u00e9 scene was great \u2014 loved it.",
    "aclImdb/test/pos/0_10.txt": "Masterpiece.",
    "aclImdb/test/neg/0_1.txt": "Awful.",
    "aclImdb/train/labeledBow.feat": "0 0:1",
}
IMDB_EXPECTED = {  # sorted by path, label 1 = pos
    "train": (["Boring <br />film.", "Caf\u00e9 scene was great \u2014 loved it.",
               "Second positive review."], [0, 1, 1]),
    "test": (["Awful.", "Dull.", "Masterpiece."], [0, 0, 1]),
}


def tree(root: Path) -> list[tuple]:
    """Everything under root, with sizes and modification times: to prove nothing changed."""
    out = []
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out.append((str(p.relative_to(root)), p.is_dir(), st.st_size, st.st_mtime_ns))
    return out


@pytest.fixture
def make_readonly():
    """chmod a folder tree read-only (0o555 / 0o444); permissions are restored afterwards."""
    done: list[Path] = []

    def apply(root: Path) -> Path:
        for p in [*sorted(root.rglob("*"), reverse=True), root]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        done.append(root)
        return root

    yield apply
    for root in done:
        for p in [root, *root.rglob("*")]:
            p.chmod(stat.S_IRWXU | (p.stat().st_mode & 0o777))


# --------------------------------------------------------------------------------------
# The module stays torch-free
# --------------------------------------------------------------------------------------


def test_import_and_numpy_functions_do_not_import_torch():
    code = (
        "import sys\n"
        "import utils.data_loaders as dl\n"
        "dl.make_copy_task(4, 5, 7); dl.make_adding_problem(4, 6); dl.make_moons(10)\n"
        "dl.load_tabular('iris')\n"
        "bad = [m for m in ('torch', 'torchvision') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('torch-free')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "torch-free" in result.stdout


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MI_DATA_ROOT", str(tmp_path / "elsewhere"))
    assert dl.default_cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("MI_DATA_ROOT")
    assert dl.default_cache_dir() == REPO_ROOT / "data"


# --------------------------------------------------------------------------------------
# MNIST (idx files)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "uncompressed"])
def test_mnist_round_trip(tmp_path, no_checksums, gz):
    root = tmp_path / "root"
    written = write_mnist(root, gz=gz)
    split = dl.load_mnist(root, download=False)
    assert split.name == "mnist" and split.task == "multiclass" and split.num_classes == 10
    assert split.X_train.shape == (5, 784) and split.X_train.dtype == np.float32
    assert split.X_test.shape == (3, 784)
    # pixel / 255 in float32, exactly
    expected = written["train_images"].reshape(5, -1).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(split.X_train, expected)
    assert split.X_train[0, :3].tolist() == [0.0, 1.0, np.float32(128) / np.float32(255)]
    assert split.y_train.dtype == np.int64
    np.testing.assert_array_equal(split.y_train, written["train_labels"])
    np.testing.assert_array_equal(split.y_test, written["test_labels"])

    raw = dl.load_mnist(root, download=False, flatten=False, normalize=False)
    assert raw.X_train.shape == (5, 28, 28) and raw.X_train.dtype == np.uint8
    np.testing.assert_array_equal(raw.X_train, written["train_images"])
    np.testing.assert_array_equal(raw.X_test, written["test_images"])


def test_idx_header_bytes_are_the_published_ones():
    # 2051 = 0x00000803 (unsigned bytes, 3 dims), 2049 = 0x00000801 (1 dim)
    assert idx_bytes(np.zeros((1, 28, 28)), 2051)[:8] == b"\x00\x00\x08\x03\x00\x00\x00\x01"
    assert idx_bytes(np.zeros(2), 2049)[:8] == b"\x00\x00\x08\x01\x00\x00\x00\x02"


def test_mnist_results_cannot_corrupt_the_in_memory_cache(tmp_path, no_checksums):
    root = tmp_path / "root"
    written = write_mnist(root)
    first = dl.load_mnist(root, download=False, normalize=False)
    first.X_train[:] = 7
    first.y_train[:] = 7
    second = dl.load_mnist(root, download=False, normalize=False)
    np.testing.assert_array_equal(second.X_train.reshape(5, 28, 28), written["train_images"])
    np.testing.assert_array_equal(second.y_train, written["train_labels"])


def test_mnist_corrupt_magic_number_is_a_clear_error(tmp_path, no_checksums):
    root = tmp_path / "root"
    write_mnist(root, gz=False)
    bad = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    data = bytearray(bad.read_bytes())
    data[3] = 0x01  # 2051 -> 2049
    bad.write_bytes(bytes(data))
    with pytest.raises(dl.DatasetFormatError, match=r"magic number 2049, expected 2051") as err:
        dl.load_mnist(root, download=False)
    assert "train-images-idx3-ubyte" in str(err.value)


def test_mnist_truncated_file_is_a_clear_error(tmp_path, no_checksums):
    root = tmp_path / "root"
    write_mnist(root, gz=True)
    bad = root / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(bad.read_bytes())
    bad.write_bytes(gzip.compress(raw[:-100]))  # header still says 3 images
    with pytest.raises(dl.DatasetFormatError, match=r"2352 bytes of data, the file holds 2252"):
        dl.load_mnist(root, download=False)
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(dl.DatasetFormatError, match="cannot read"):
        dl.load_mnist(root, download=False)


def test_mnist_images_and_labels_must_match(tmp_path, no_checksums):
    root = tmp_path / "root"
    write_mnist(root, gz=False)
    labels = np.zeros(4, dtype=np.uint8)  # 4 labels for 5 images
    (root / "MNIST" / "raw" / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels, 2049))
    with pytest.raises(dl.DatasetFormatError, match="5 images but 4 labels"):
        dl.load_mnist(root, download=False)


def test_local_copy_is_verified_when_its_checksum_is_known(tmp_path, monkeypatch):
    root = tmp_path / "root"
    write_mnist(root)
    path = root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    # the official md5 is registered: the tiny file is not the official one
    with pytest.raises(dl.DatasetChecksumError) as err:
        dl.load_mnist(root, download=False)
    actual = hashlib.md5(path.read_bytes()).hexdigest()
    msg = str(err.value)
    assert str(path) in msg and "f68b3c2dcbeaaa9fbdd348bbdeb94873" in msg and actual in msg
    # registering the right digests makes the same files load
    checksums = {
        p.name: ("md5", hashlib.md5(p.read_bytes()).hexdigest())
        for p in (root / "MNIST" / "raw").iterdir()
    }
    monkeypatch.setattr(dl, "KNOWN_CHECKSUMS", checksums)
    assert dl.load_mnist(root, download=False).X_train.shape == (5, 784)


# --------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------


def test_cifar10_from_the_official_tar(tmp_path, no_checksums):
    root = tmp_path / "root"
    members, raw = cifar_members()
    tar_with(root / "cifar-10-python.tar.gz", members)
    split = dl.load_cifar10(root, download=False, normalize=False)
    assert split.name == "cifar10" and split.note is None
    assert split.classes == dl.CIFAR10_CLASSES
    assert split.X_train.shape == (10, 32, 32, 3) and split.X_test.shape == (2, 32, 32, 3)
    assert split.X_train[0, 1, 2].tolist() == [200, 100, 50]  # the known pixel, channels last
    X_ref, y_ref = cifar_reference(raw, CIFAR_BATCHES[:5])  # batches 1..5 in order
    np.testing.assert_array_equal(split.X_train, X_ref)
    np.testing.assert_array_equal(split.y_train, y_ref)
    X_ref, y_ref = cifar_reference(raw, ["test_batch"])
    np.testing.assert_array_equal(split.X_test, X_ref)
    np.testing.assert_array_equal(split.y_test, y_ref)
    assert split.y_train.dtype == np.int64

    norm = dl.load_cifar10(root, download=False)
    assert norm.X_train.dtype == np.float32
    np.testing.assert_array_equal(norm.X_train, split.X_train.astype(np.float32) / np.float32(255))


def test_cifar10_from_an_extracted_folder(tmp_path, no_checksums):
    root = tmp_path / "root"
    members, raw = cifar_members()
    for name, data in members.items():
        write_bytes(root / name, data)
    split = dl.load_cifar10(root, download=False, normalize=False)
    np.testing.assert_array_equal(split.X_train, cifar_reference(raw, CIFAR_BATCHES[:5])[0])
    assert split.X_test[0].sum() == raw["test_batch"][0][0].astype(np.int64).sum()


def test_cifar10_subset_is_named_and_flagged(tmp_path, no_checksums):
    root = tmp_path / "root"
    rng = np.random.default_rng(3)
    x_train = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    y_train, y_test = np.array([0, 9, 3, 3], np.uint8), np.array([1, 2], np.uint8)
    (root / "cifar10_subset").mkdir(parents=True)
    np.savez(root / "cifar10_subset" / "cifar10_subset.npz",
             x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    split = dl.load_cifar10(root, download=False)
    assert split.name == "cifar10_subset"
    assert "not comparable" in split.note.lower() and "not comparable" in repr(split).lower()
    np.testing.assert_array_equal(split.X_train, x_train.astype(np.float32) / np.float32(255))
    assert split.y_train.tolist() == [0, 9, 3, 3] and split.y_train.dtype == np.int64
    assert split.y_test.tolist() == [1, 2]
    # the full archive, when present too, is preferred over the subset
    tar_with(root / "cifar-10-python.tar.gz", cifar_members()[0])
    assert dl.load_cifar10(root, download=False).name == "cifar10"


def test_cifar10_missing_batch_is_a_clear_error(tmp_path, no_checksums):
    root = tmp_path / "root"
    members, _ = cifar_members()
    del members["cifar-10-batches-py/data_batch_4"]
    tar_with(root / "cifar-10-python.tar.gz", members)
    with pytest.raises(dl.DatasetFormatError, match="data_batch_4"):
        dl.load_cifar10(root, download=False)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar10_pickles_cannot_run_code(tmp_path, no_checksums):
    root = tmp_path / "root"
    members, _ = cifar_members()
    members["cifar-10-batches-py/data_batch_2"] = pickle.dumps({b"data": _Evil()}, protocol=2)
    tar_with(root / "cifar-10-python.tar.gz", members)
    with pytest.raises(dl.DatasetFormatError, match="refusing to load"):
        dl.load_cifar10(root, download=False)


# --------------------------------------------------------------------------------------
# IMDB
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layout", ["imdb/aclImdb_labeled_50k.tar.gz", "aclImdb_v1.tar.gz", "imdb/aclImdb_v1.tar.gz",
               "extracted"],
)
def test_imdb_labels_order_and_unsup_ignored(tmp_path, no_checksums, layout):
    root = tmp_path / "root"
    encoded = {name: text.encode("utf-8") for name, text in IMDB_REVIEWS.items()}
    if layout == "extracted":
        for name, data in encoded.items():
            write_bytes(root / name, data)
    else:
        tar_with(root / layout, encoded)
    train_x, train_y, test_x, test_y = dl.load_imdb(root, download=False)
    assert (train_x, train_y.tolist()) == IMDB_EXPECTED["train"]
    assert (test_x, test_y.tolist()) == IMDB_EXPECTED["test"]
    assert train_y.dtype == np.int64 and test_y.dtype == np.int64


def test_imdb_archive_without_reviews_is_a_clear_error(tmp_path, no_checksums):
    root = tmp_path / "root"
    tar_with(root / "aclImdb_v1.tar.gz", {"something/else.txt": b"hi"})
    with pytest.raises(dl.DatasetFormatError, match="no reviews"):
        dl.load_imdb(root, download=False)


# --------------------------------------------------------------------------------------
# Tiny Shakespeare, and the checksum of a local copy
# --------------------------------------------------------------------------------------

SHAKESPEARE = "First Citizen:\nBefore we proceed any further, hear me speak.\n"


def test_tiny_shakespeare_reads_the_text(tmp_path, no_checksums):
    root = tmp_path / "root"
    write_bytes(root / "tinyshakespeare" / "input.txt", SHAKESPEARE.encode())
    assert dl.load_tiny_shakespeare(root, download=False) == SHAKESPEARE


def test_tiny_shakespeare_wrong_local_copy_fails_its_checksum(tmp_path):
    root = tmp_path / "root"
    path = write_bytes(root / "tinyshakespeare" / "input.txt", SHAKESPEARE.encode())
    with pytest.raises(dl.DatasetChecksumError) as err:
        dl.load_tiny_shakespeare(root, download=False)
    msg = str(err.value)
    assert str(path) in msg
    assert "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed" in msg
    assert hashlib.sha256(SHAKESPEARE.encode()).hexdigest() in msg


# --------------------------------------------------------------------------------------
# Read-only data roots
# --------------------------------------------------------------------------------------


def test_read_only_root_is_read_and_never_written(tmp_path, offline_cache, no_checksums,
                                                  make_readonly):
    root = tmp_path / "root"
    written = write_mnist(root)
    write_bytes(root / "tinyshakespeare" / "input.txt", SHAKESPEARE.encode())
    make_readonly(root)
    before = tree(root)
    split = dl.load_mnist(root, download=True)
    np.testing.assert_array_equal(split.y_test, written["test_labels"])
    assert dl.load_tiny_shakespeare(root, download=True) == SHAKESPEARE
    assert tree(root) == before
    assert not offline_cache.exists()  # nothing needed caching either


def test_download_with_read_only_root_goes_to_the_cache(tmp_path, offline_cache, monkeypatch,
                                                        make_readonly):
    root = make_readonly(write_bytes(tmp_path / "root" / "README", b"read-only").parent)
    before = tree(root)
    monkeypatch.setattr(dl, "KNOWN_CHECKSUMS",
                        {"input.txt": ("sha256", hashlib.sha256(SHAKESPEARE.encode()).hexdigest())})
    monkeypatch.setattr(dl, "_fetch", lambda url, dest: dest.write_bytes(SHAKESPEARE.encode()))
    assert dl.load_tiny_shakespeare(root) == SHAKESPEARE
    assert tree(root) == before  # root ignores permission bits: the listing is the proof
    assert (offline_cache / "tinyshakespeare" / "input.txt").read_text() == SHAKESPEARE


def test_download_goes_into_a_writable_root(tmp_path, offline_cache, monkeypatch, no_checksums):
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setattr(dl, "_fetch", lambda url, dest: dest.write_bytes(SHAKESPEARE.encode()))
    assert dl.load_tiny_shakespeare(root) == SHAKESPEARE
    assert (root / "tinyshakespeare" / "input.txt").is_file()
    assert not offline_cache.exists()


def test_missing_data_root_is_a_clear_error(tmp_path):
    with pytest.raises(dl.DatasetNotFoundError, match="does not exist") as err:
        dl.load_mnist(tmp_path / "typo", download=False)
    assert str(tmp_path / "typo") in str(err.value)


# --------------------------------------------------------------------------------------
# Downloads: atomic, verified, and a clear error when offline
# --------------------------------------------------------------------------------------


def _no_part_files(*folders: Path) -> bool:
    return not any(p.name.endswith(".part") for f in folders if f.exists() for p in f.rglob("*"))


def test_download_success_is_verified_and_leaves_no_part(offline_cache, monkeypatch):
    payload = SHAKESPEARE.encode()
    monkeypatch.setattr(dl, "KNOWN_CHECKSUMS",
                        {"input.txt": ("sha256", hashlib.sha256(payload).hexdigest())})
    calls = []

    def fake_fetch(url, dest):
        calls.append((url, dest))
        dest.write_bytes(payload)

    monkeypatch.setattr(dl, "_fetch", fake_fetch)
    # a stale part file from an interrupted earlier run is simply overwritten
    write_bytes(offline_cache / "tinyshakespeare" / "input.txt.part", b"stale half download")
    assert dl.load_tiny_shakespeare() == SHAKESPEARE
    final = offline_cache / "tinyshakespeare" / "input.txt"
    assert final.read_bytes() == payload
    assert calls == [(dl._SHAKESPEARE_URL, final.with_name("input.txt.part"))]
    assert _no_part_files(offline_cache)
    dl.load_tiny_shakespeare()  # found now: no second download
    assert len(calls) == 1


def test_interrupted_download_leaves_no_final_file(offline_cache, monkeypatch, no_checksums):
    def half_then_fail(url, dest):
        dest.write_bytes(SHAKESPEARE.encode()[:10])
        raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(dl, "_fetch", half_then_fail)
    with pytest.raises(dl.DatasetNotFoundError, match="ConnectionResetError"):
        dl.load_tiny_shakespeare()
    assert not (offline_cache / "tinyshakespeare" / "input.txt").exists()
    assert _no_part_files(offline_cache)


def test_download_with_wrong_checksum_is_refused(offline_cache, monkeypatch):
    monkeypatch.setattr(dl, "_fetch", lambda url, dest: dest.write_bytes(b"not shakespeare"))
    with pytest.raises(dl.DatasetChecksumError) as err:
        dl.load_tiny_shakespeare()
    msg = str(err.value)
    assert "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed" in msg
    assert hashlib.sha256(b"not shakespeare").hexdigest() in msg
    assert not (offline_cache / "tinyshakespeare" / "input.txt").exists()
    assert _no_part_files(offline_cache)


def test_download_falls_back_to_the_next_mirror(offline_cache, monkeypatch, no_checksums):
    arrays = {}

    def fake_fetch(url, dest):
        if "ossci-datasets" in url:
            raise urllib.error.URLError("mirror down")
        stem = dest.name.removesuffix(".gz.part")
        key = next(k for k, (s, _) in MNIST_STEMS.items() if s == stem)
        arrays[key] = np.full((2, 28, 28) if "images" in key else 2, 3, np.uint8)
        dest.write_bytes(gzip.compress(idx_bytes(arrays[key], MNIST_STEMS[key][1])))

    monkeypatch.setattr(dl, "_fetch", fake_fetch)
    split = dl.load_mnist(normalize=False)
    assert split.X_train.shape == (2, 784) and (split.X_train == 3).all()
    assert sorted(p.name for p in (offline_cache / "MNIST" / "raw").iterdir()) == sorted(
        s + ".gz" for s, _ in MNIST_STEMS.values()
    )


def test_offline_error_names_files_folders_urls_and_data_root(tmp_path, offline_cache):
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(dl.DatasetNotFoundError) as err:
        dl.load_mnist(root)
    assert isinstance(err.value, FileNotFoundError)
    msg = str(err.value)
    for stem, _ in MNIST_STEMS.values():
        assert f"MNIST/raw/{stem}.gz" in msg
        assert f"https://ossci-datasets.s3.amazonaws.com/mnist/{stem}.gz" in msg
    assert "--data-root" in msg and str(root) in msg and str(offline_cache) in msg
    assert "network disabled in tests" in msg  # the cause, in one short line
    assert not msg.startswith("[Errno")


def test_failed_download_leaves_no_empty_folders(tmp_path, offline_cache, monkeypatch):
    root = tmp_path / "root"  # writable: downloads would go here
    root.mkdir()
    with pytest.raises(dl.DatasetNotFoundError):
        dl.load_mnist(root)
    assert list(root.iterdir()) == []  # no empty MNIST/raw left behind
    monkeypatch.setattr(dl, "_fetch", lambda url, dest: dest.write_bytes(b"not shakespeare"))
    with pytest.raises(dl.DatasetChecksumError):
        dl.load_tiny_shakespeare()
    assert not offline_cache.exists() or list(offline_cache.iterdir()) == []


def test_advice_names_the_data_root_the_user_gave(tmp_path, offline_cache):
    root = tmp_path / "my data"
    root.mkdir()
    with pytest.raises(dl.DatasetNotFoundError) as err:
        dl.load_mnist(root)
    advice = str(err.value).strip().splitlines()[-1]
    assert advice.startswith(f"Put them into {root}, the --data-root you gave")
    with pytest.raises(dl.DatasetNotFoundError) as err:
        dl.load_mnist()
    assert str(err.value).strip().splitlines()[-1].startswith(f"Download them into {offline_cache}")


def test_short_reasons_are_cut_at_a_word():
    text = dl._short(OSError("word " * 100))
    assert text.endswith("word ...") and len(text) < 220


def test_download_false_never_fetches(offline_cache, monkeypatch):
    def must_not_run(url, dest):
        raise AssertionError("download=False must not fetch")

    monkeypatch.setattr(dl, "_fetch", must_not_run)
    with pytest.raises(dl.DatasetNotFoundError, match=r"download=False") as err:
        dl.load_cifar10(download=False)
    msg = str(err.value)
    assert "cifar-10-python.tar.gz" in msg and "cifar10_subset/cifar10_subset.npz" in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in msg


class _FakeResponse:
    """Stands in for urllib's response: a body, and a Content-Length header."""

    def __init__(self, body: bytes, length: int):
        self.stream = io.BytesIO(body)
        self.headers = {"Content-Length": str(length)}

    def read(self, n=-1):
        return self.stream.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_real_fetch_streams_and_checks_the_length(tmp_path, monkeypatch):
    body = bytes(range(256)) * 4000  # ~1 MB, more than one read chunk
    monkeypatch.setattr(dl.urllib.request, "urlopen",
                        lambda url, timeout: _FakeResponse(body, len(body)))
    dest = tmp_path / "file.bin.part"
    REAL_FETCH("https://example.invalid/file.bin", dest)
    assert dest.read_bytes() == body
    monkeypatch.setattr(dl.urllib.request, "urlopen",
                        lambda url, timeout: _FakeResponse(body[:1000], len(body)))
    with pytest.raises(OSError, match=f"after 1000 of {len(body)} bytes"):
        REAL_FETCH("https://example.invalid/file.bin", dest)


# --------------------------------------------------------------------------------------
# Imagenette
# --------------------------------------------------------------------------------------

WNIDS = ("n01440764", "n02102040")


def imagenette_members() -> dict[str, bytes]:
    """imagenette2-160/{train,val}/<wnid>/*.JPEG: 2 classes x 2 tiny JPEGs per split."""
    from PIL import Image

    members = {}
    for split in ("train", "val"):
        for k, wnid in enumerate(WNIDS):
            for i in range(2):
                buf = io.BytesIO()
                # width 20 + i, height 12: each image's size identifies it
                Image.new("RGB", (20 + i, 12), color=(200 * k, 50, 100)).save(buf, "JPEG")
                members[f"imagenette2-160/{split}/{wnid}/img{i}.JPEG"] = buf.getvalue()
    return members


def test_imagenette_tgz_is_extracted_into_the_cache(tmp_path, offline_cache, make_readonly):
    pytest.importorskip("torchvision")
    root = tmp_path / "root"
    tar_with(root / "imagenette2-160.tgz", imagenette_members())
    make_readonly(root)
    before = tree(root)
    ds = dl.load_imagenette(root, download=False)
    assert tree(root) == before
    assert (offline_cache / "imagenette2-160" / "val" / WNIDS[1] / "img1.JPEG").is_file()
    assert ds.classes == list(WNIDS)
    assert [label for _, label in ds.samples] == [0, 0, 1, 1]
    image, label = ds[3]
    assert image.size == (21, 12) and label == 1
    assert image.getpixel((10, 6))[0] > 150  # class 1 was drawn red (200, 50, 100)
    # the cache's extracted folder is used from now on, with or without the archive
    val = dl.load_imagenette(download=False, split="val")
    assert len(val) == 4 and val.root.startswith(str(offline_cache))
    assert not any(p.name.startswith(".imagenette") for p in offline_cache.iterdir())


def test_imagenette_extracted_folder_in_root_is_used_in_place(tmp_path, offline_cache):
    pytest.importorskip("torchvision")
    root = tmp_path / "root"
    for name, data in imagenette_members().items():
        write_bytes(root / name, data)
    ds = dl.load_imagenette(root, download=False, split="val")
    assert len(ds) == 4 and ds.root == str(root / "imagenette2-160" / "val")
    assert not offline_cache.exists()


def test_imagenette_bad_arguments():
    with pytest.raises(ValueError, match="'train' or 'val'"):
        dl.load_imagenette(split="test")
    with pytest.raises(ValueError, match="160, 320"):
        dl.load_imagenette(size=224)


def test_imagenette_unsafe_archive_is_refused(tmp_path, offline_cache):
    root = tmp_path / "root"
    tar_with(root / "imagenette2-160.tgz", {"imagenette2-160/../../evil.txt": b"x"})
    with pytest.raises(dl.DatasetFormatError, match="unsafe"):
        dl.load_imagenette(root, download=False)
    assert not (tmp_path / "evil.txt").exists()


# --------------------------------------------------------------------------------------
# scikit-learn's bundled tabular data
# --------------------------------------------------------------------------------------

TABULAR_SHAPES = {"diabetes": (442, 10), "breast_cancer": (569, 30), "iris": (150, 4),
                  "digits": (1797, 64)}


@pytest.mark.parametrize("name", dl.TABULAR)
def test_tabular_shapes_dtypes_and_train_statistics(name):
    n, d = TABULAR_SHAPES[name]
    split = dl.load_tabular(name, test_size=0.2, seed=0)
    assert len(split.X_test) == math.ceil(0.2 * n) and len(split.X_train) + len(split.X_test) == n
    assert split.X_train.shape[1] == d and split.X_train.dtype == np.float64
    if name == "diabetes":
        assert split.task == "regression" and split.y_train.dtype == np.float64
    else:
        assert split.task == ("binary" if name == "breast_cancer" else "multiclass")
        assert split.y_train.dtype == np.int64
    # standardized with the TRAINING statistics: the reference, computed here from the raw split
    raw = dl.load_tabular(name, test_size=0.2, seed=0, standardize=False)
    mean, std = raw.X_train.mean(axis=0), raw.X_train.std(axis=0)
    std[std == 0] = 1.0
    np.testing.assert_allclose(split.X_train, (raw.X_train - mean) / std, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(split.X_test, (raw.X_test - mean) / std, rtol=1e-12, atol=1e-12)
    varying = raw.X_train.std(axis=0) > 0
    np.testing.assert_allclose(split.X_train.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(split.X_train.std(axis=0)[varying], 1.0, rtol=1e-10)
    assert np.abs(split.X_test.mean(axis=0)).max() > 1e-3  # test stats are not used
    np.testing.assert_array_equal(split.y_test, raw.y_test)


def test_tabular_constant_features_give_no_nan():
    split = dl.load_tabular("digits")
    assert np.isfinite(split.X_train).all() and np.isfinite(split.X_test).all()
    # pixel 0 of every digits image is blank: centred to exactly 0
    assert (split.X_train[:, 0] == 0).all() and (split.X_test[:, 0] == 0).all()


def test_tabular_split_is_stratified_and_seeded():
    iris = dl.load_tabular("iris", test_size=0.2, seed=0)
    assert np.bincount(iris.y_test).tolist() == [10, 10, 10]  # 50 of each class -> 10 each
    assert iris.classes == ["setosa", "versicolor", "virginica"]
    cancer = dl.load_tabular("breast_cancer", test_size=0.25, seed=1)
    all_y = np.concatenate([cancer.y_train, cancer.y_test])
    expected = np.bincount(all_y) * len(cancer.y_test) / len(all_y)
    assert np.abs(np.bincount(cancer.y_test) - expected).max() <= 1.0
    again = dl.load_tabular("breast_cancer", test_size=0.25, seed=1)
    np.testing.assert_array_equal(again.X_train, cancer.X_train)
    other = dl.load_tabular("breast_cancer", test_size=0.25, seed=2)
    assert not np.array_equal(other.X_train, cancer.X_train)


def test_tabular_bad_arguments():
    with pytest.raises(ValueError, match="diabetes"):
        dl.load_tabular("wine")
    with pytest.raises(ValueError, match="test_size"):
        dl.load_tabular("iris", test_size=1.5)


# --------------------------------------------------------------------------------------
# Generated tasks
# --------------------------------------------------------------------------------------


def test_make_regression_is_the_linear_model():
    X, y, w, b = dl.make_regression(n=50, d=4, noise=0.0, seed=3)
    assert X.shape == (50, 4) and y.shape == (50,) and w.shape == (4,) and isinstance(b, float)
    np.testing.assert_allclose(y, X @ w + b, rtol=1e-12, atol=1e-12)
    X, y, w, b = dl.make_regression(n=20000, d=2, noise=0.5, seed=4)
    assert abs((y - X @ w - b).std() - 0.5) < 0.02
    np.testing.assert_array_equal(dl.make_regression(seed=5)[1], dl.make_regression(seed=5)[1])


def test_make_blobs_clusters():
    X, y = dl.make_blobs(n=301, centers=3, d=2, std=0.0, seed=0)
    assert X.shape == (301, 2) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [101, 100, 100]
    centres = np.stack([X[y == k][0] for k in range(3)])
    np.testing.assert_array_equal(X, centres[y])  # std 0: every point sits on its centre
    assert len(np.unique(centres, axis=0)) == 3
    X, y = dl.make_blobs(n=3000, centers=3, std=2.0, seed=1)
    for k in range(3):
        assert np.abs(X[y == k].std(axis=0) - 2.0).max() < 0.15


def test_make_moons_lie_on_their_half_circles():
    X, y = dl.make_moons(n=200, noise=0.0, seed=0)
    assert X.shape == (200, 2) and np.bincount(y).tolist() == [100, 100]
    upper, lower = X[y == 0], X[y == 1]
    np.testing.assert_allclose((upper**2).sum(axis=1), 1.0, rtol=1e-12)
    assert (upper[:, 1] >= 0).all()
    np.testing.assert_allclose(((lower - [1.0, 0.5]) ** 2).sum(axis=1), 1.0, rtol=1e-12)
    assert (lower[:, 1] <= 0.5).all()
    noisy, _ = dl.make_moons(n=200, noise=0.1, seed=0)
    assert 0.05 < np.abs(noisy - X).mean() < 0.15


def test_sequence_tasks():
    src, tgt = dl.make_copy_task(64, 10, 7, seed=0)
    assert src.shape == (64, 10) and src.dtype == np.int64 and tgt.dtype == np.int64
    np.testing.assert_array_equal(tgt, src)
    assert src.min() >= 0 and src.max() == 6
    assert not np.shares_memory(src, tgt)
    src, tgt = dl.make_reverse_task(64, 10, 7, seed=0)
    np.testing.assert_array_equal(tgt[:, 0], src[:, 9])
    np.testing.assert_array_equal(tgt, src[:, ::-1])
    src, tgt = dl.make_sort_task(64, 10, 7, seed=0)
    assert (np.diff(tgt, axis=1) >= 0).all()
    np.testing.assert_array_equal(np.sort(src, axis=1), tgt)
    np.testing.assert_array_equal(np.bincount(src.ravel(), minlength=7),
                                  np.bincount(tgt.ravel(), minlength=7))  # a permutation
    src, _ = dl.make_copy_task(64, 10, 7, seed=0, reserved=2)
    assert src.min() == 2  # ids 0 and 1 left for padding / start tokens
    with pytest.raises(ValueError, match="vocab"):
        dl.make_copy_task(4, 5, 0)


def test_adding_problem():
    X, y = dl.make_adding_problem(500, 11, seed=0)
    assert X.shape == (500, 11, 2) and X.dtype == np.float32 and y.dtype == np.float32
    values, markers = X[..., 0], X[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert set(np.unique(markers).tolist()) == {0.0, 1.0}
    assert (markers.sum(axis=1) == 2).all()
    assert (markers[:, :5].sum(axis=1) == 1).all() and (markers[:, 5:].sum(axis=1) == 1).all()
    np.testing.assert_array_equal(y, (values * markers).sum(axis=1))
    with pytest.raises(ValueError, match="seq_len"):
        dl.make_adding_problem(3, 1)


# --------------------------------------------------------------------------------------
# Torch wrappers
# --------------------------------------------------------------------------------------


def test_to_tensor_dataset_dtypes():
    torch = pytest.importorskip("torch")
    X16 = np.arange(6, dtype=np.float16).reshape(3, 2)
    ds = dl.to_tensor_dataset(X16, np.array([0, 1, 2], dtype=np.uint8))
    assert ds.tensors[0].dtype == torch.float32 and ds.tensors[1].dtype == torch.int64
    np.testing.assert_array_equal(ds.tensors[0].numpy(), X16.astype(np.float32))
    ds = dl.to_tensor_dataset(np.ones((3, 2)), np.zeros(3))
    assert ds.tensors[0].dtype == torch.float64 and ds.tensors[1].dtype == torch.float64
    with pytest.raises(ValueError, match="same number of rows"):
        dl.to_tensor_dataset(np.ones((3, 2)), np.zeros(4))


def test_make_loader_is_reproducible_and_complete():
    torch = pytest.importorskip("torch")
    X = np.arange(30, dtype=np.float32).reshape(10, 3)  # row i holds 3i, 3i+1, 3i+2
    y = np.arange(10)

    def epoch(loader):
        return [(xb.clone(), yb.clone()) for xb, yb in loader]

    loader = dl.make_loader(X, y, batch_size=4, shuffle=True, seed=0)
    batches = epoch(loader)
    assert [len(yb) for _, yb in batches] == [4, 4, 2]
    assert batches[0][0].dtype == torch.float32 and batches[0][1].dtype == torch.int64
    order = torch.cat([yb for _, yb in batches]).numpy()
    assert sorted(order.tolist()) == list(range(10)) and order.tolist() != list(range(10))
    np.testing.assert_array_equal(torch.cat([xb for xb, _ in batches]).numpy(), X[order])
    second_epoch = epoch(loader)

    torch.manual_seed(123)  # the global seed must not matter
    same = dl.make_loader(X, y, batch_size=4, shuffle=True, seed=0)
    assert [yb.tolist() for _, yb in epoch(same)] == [yb.tolist() for _, yb in batches]
    assert [yb.tolist() for _, yb in epoch(same)] == [yb.tolist() for _, yb in second_epoch]
    other = dl.make_loader(X, y, batch_size=4, shuffle=True, seed=1)
    assert [yb.tolist() for _, yb in epoch(other)] != [yb.tolist() for _, yb in batches]

    plain = dl.make_loader(X, y, batch_size=4, shuffle=False, drop_last=True)
    assert [yb.tolist() for _, yb in plain] == [[0, 1, 2, 3], [4, 5, 6, 7]]


# --------------------------------------------------------------------------------------
# The dispatcher
# --------------------------------------------------------------------------------------


def test_load_arrays_dispatches(tmp_path, no_checksums):
    iris = dl.load_arrays("iris", seed=1)
    np.testing.assert_array_equal(iris.X_train, dl.load_tabular("iris", seed=1).X_train)
    root = tmp_path / "root"
    written = write_mnist(root)
    mnist = dl.load_arrays("mnist", root, download=False, flatten=False)
    assert mnist.X_train.shape == (5, 28, 28)
    np.testing.assert_array_equal(mnist.y_train, written["train_labels"])
    with pytest.raises(ValueError, match="diabetes, breast_cancer, iris, digits, mnist, cifar10"):
        dl.load_arrays("imagenet")


def test_split_summary_and_checks():
    s = dl.Split(np.zeros((4, 2)), np.zeros(4, np.int64), np.zeros((1, 2)), np.zeros(1, np.int64),
                 name="toy", task="binary", classes=["a", "b"])
    assert repr(s) == (
        "Split('toy', binary, 2 classes): X_train (4, 2) float64, y_train (4,) int64, "
        "X_test (1, 2) float64, y_test (1,) int64"
    )
    with pytest.raises(ValueError, match="3 rows but y_train has 4"):
        dl.Split(np.zeros((3, 2)), np.zeros(4), np.zeros((1, 2)), np.zeros(1), "t", "regression")
    with pytest.raises(ValueError, match="task"):
        dl.Split(np.zeros((4, 2)), np.zeros(4), np.zeros((1, 2)), np.zeros(1), "t", "ranking")


# --------------------------------------------------------------------------------------
# Image batches for the vision lessons: load_images, digits_as_images, random_crop_flip
# --------------------------------------------------------------------------------------


def test_digits_become_blocks_in_a_4_pixel_border():
    raw = np.zeros((1, 64))
    raw[0, 0] = 16.0  # ink in the top-left pixel of the 8x8 digit
    raw[0, 63] = 8.0  # half ink in the bottom-right one
    expected = np.zeros((1, 1, 32, 32), dtype=np.float32)
    expected[0, 0, 4:7, 4:7] = 1.0  # pixel (0, 0) -> a 3x3 block after the 4-pixel border
    expected[0, 0, 25:28, 25:28] = 0.5  # pixel (7, 7) -> rows/cols 4 + 21 .. 4 + 23
    np.testing.assert_array_equal(dl.digits_as_images(raw), expected)
    small = dl.digits_as_images(raw, size=16, channels=3)  # blocks of 1 pixel, RGB
    assert small.shape == (1, 3, 16, 16) and small.dtype == np.float32
    assert small[0, :, 4, 4].tolist() == [1.0] * 3 and small[0, :, 11, 11].tolist() == [0.5] * 3
    assert small.sum() == 3 * 1.5
    with pytest.raises(ValueError, match=r"\(N, 64\)"):
        dl.digits_as_images(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="multiple of 8"):
        dl.digits_as_images(raw, size=20)


def test_load_images_digits_shapes_and_each_normalisation_uses_training_statistics():
    raw = dl.load_images("digits", size=16, channels=3)
    assert raw.X_train.shape == (1437, 3, 16, 16) and raw.X_test.shape == (360, 3, 16, 16)
    assert raw.X_train.dtype == raw.X_test.dtype == np.float32 and raw.y_train.dtype == np.int64
    assert raw.classes == [str(k) for k in range(10)] and raw.note is None
    assert raw.X_train.min() == 0.0 and raw.X_train.max() == 1.0
    tabular = dl.load_tabular("digits", standardize=False, seed=3)
    np.testing.assert_array_equal(dl.load_images("digits", seed=3).y_test, tabular.y_test)

    X_train, X_test = raw.X_train.astype(np.float64), raw.X_test.astype(np.float64)
    tol = {"rtol": 1e-5, "atol": 1e-5}
    std = dl.load_images("digits", size=16, channels=3, normalize="standardize")
    mean, sd = X_train.mean(), X_train.std()
    np.testing.assert_allclose(std.X_train, (X_train - mean) / sd, **tol)
    np.testing.assert_allclose(std.X_test, (X_test - mean) / sd, **tol)  # the TRAINING mean
    lecun = dl.load_images("digits", size=16, channels=3, normalize="lecun")
    np.testing.assert_allclose(lecun.X_test, -0.1 + 1.275 * X_test, **tol)
    assert lecun.X_train.min() == np.float32(-0.1) and lecun.X_train.max() == np.float32(1.175)
    per_channel = dl.load_images("digits", size=16, channels=3, normalize="per_channel")
    mean_c = X_train.mean(axis=(0, 2, 3), keepdims=True)
    sd_c = X_train.std(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(per_channel.X_test, (X_test - mean_c) / sd_c, **tol)
    pixel = dl.load_images("digits", size=16, channels=3, normalize="per_pixel_mean")
    np.testing.assert_allclose(pixel.X_train.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(pixel.X_test, X_test - X_train.mean(axis=0), **tol)
    for split in (std, lecun, per_channel, pixel):
        assert split.X_train.dtype == split.X_test.dtype == np.float32


def test_load_images_mnist_is_padded_and_cifar10_is_channels_first(tmp_path, no_checksums):
    root = tmp_path / "root"
    written = write_mnist(root)
    mnist = dl.load_images("mnist", data_root=root, download=False)
    assert mnist.X_train.shape == (5, 1, 32, 32) and mnist.X_test.shape == (3, 1, 32, 32)
    expected = np.zeros((5, 1, 32, 32), dtype=np.float32)
    expected[:, 0, 2:30, 2:30] = written["train_images"] / np.float32(255)
    np.testing.assert_array_equal(mnist.X_train, expected)  # 2 pixels of background a side
    np.testing.assert_array_equal(mnist.y_train, written["train_labels"])
    assert dl.load_images("mnist", size=28, channels=3, data_root=root,
                          download=False).X_test.shape == (3, 3, 28, 28)
    members, _ = cifar_members()
    tar_with(root / "cifar-10-python.tar.gz", members)
    cifar = dl.load_images("cifar10", channels=3, data_root=root, download=False)
    assert cifar.X_train.shape == (10, 3, 32, 32) and cifar.classes == dl.CIFAR10_CLASSES
    assert cifar.X_train[0, :, 1, 2].tolist() == pytest.approx([200 / 255, 100 / 255, 50 / 255])
    assert cifar.X_train.flags.c_contiguous


def test_load_images_bad_arguments_and_missing_data(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        dl.load_images("imagenet")
    with pytest.raises(ValueError, match="normalize must be one of"):
        dl.load_images("digits", normalize="zscore")
    with pytest.raises(ValueError, match="cifar10: 3 channels, 32x32"):
        dl.load_images("cifar10", channels=1)
    with pytest.raises(ValueError, match="mnist: size must be even and >= 28"):
        dl.load_images("mnist", size=24, data_root=tmp_path, download=False)
    with pytest.raises(dl.DatasetNotFoundError, match="MNIST"):
        dl.load_images("mnist", data_root=tmp_path, download=False)


def test_random_crop_flip_cuts_windows_of_the_padded_image_and_mirrors_them():
    import torch

    x = torch.arange(2 * 3 * 5 * 6, dtype=torch.float32).reshape(2, 3, 5, 6) + 1
    torch.testing.assert_close(dl.random_crop_flip(x, padding=0, flip=False), x)
    mirrored = dl.random_crop_flip(x.repeat(64, 1, 1, 1), padding=0,
                                   generator=torch.Generator().manual_seed(0))
    is_flipped = [bool(torch.equal(m, x[i % 2].flip(-1))) for i, m in enumerate(mirrored)]
    assert all(f or torch.equal(m, x[i % 2]) for i, (f, m) in enumerate(zip(is_flipped, mirrored)))
    assert 40 < sum(is_flipped) < 88  # about half of the 128
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    crops = dl.random_crop_flip(x.repeat(16, 1, 1, 1), padding=2, flip=False,
                                generator=torch.Generator().manual_seed(1))
    offsets = set()
    for i, crop in enumerate(crops):  # each crop is one 5x6 window of its padded image
        found = [(a, b) for a in range(5) for b in range(5)
                 if torch.equal(crop, padded[i % 2, :, a:a + 5, b:b + 6])]
        assert found, f"crop {i} is no window of the padded image"
        offsets.add(found[0])
    assert len(offsets) > 3  # the windows move
    again = dl.random_crop_flip(x.repeat(16, 1, 1, 1), padding=2, flip=False,
                                generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(again, crops)  # the generator decides
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        dl.random_crop_flip(x[0])


# --------------------------------------------------------------------------------------
# The real datasets, when a local copy is present (skipped otherwise)
# --------------------------------------------------------------------------------------


def test_real_mnist(shared_data):
    split = dl.load_mnist(shared_data, download=False)
    assert split.X_train.shape == (60000, 784) and split.X_test.shape == (10000, 784)
    assert np.bincount(split.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918,
                                                   6265, 5851, 5949]
    assert np.bincount(split.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028,
                                                  974, 1009]
    assert split.X_train.min() == 0.0 and split.X_train.max() == 1.0


def test_real_cifar10_subset(shared_data):
    split = dl.load_cifar10(shared_data, download=False)
    assert split.name == "cifar10_subset"
    assert split.X_train.shape == (4000, 32, 32, 3) and split.X_test.shape == (1000, 32, 32, 3)
    assert split.y_train.min() == 0 and split.y_train.max() == 9


def test_real_tiny_shakespeare(shared_data):
    text = dl.load_tiny_shakespeare(shared_data, download=False)
    assert len(text) == 1115394 and text.startswith("First Citizen:")


def test_real_imdb(shared_data):
    train_x, train_y, test_x, test_y = dl.load_imdb(shared_data, download=False)
    assert len(train_x) == len(train_y) == 25000 and len(test_x) == len(test_y) == 25000
    assert train_y.sum() == 12500 and test_y.sum() == 12500
