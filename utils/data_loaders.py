"""Every dataset of the curriculum, from one place.

L1 (NumPy) scripts get plain NumPy arrays; L2/L3 (PyTorch) scripts get the same
arrays, or wrap them with :func:`make_loader`. Importing this module never
imports torch, torchvision or scikit-learn: L1 scripts must stay torch-free
(a test checks it), so the few functions that return torch objects import
torch inside their bodies.

Three kinds of data live here.

1. Offline defaults that need no download (every script's default):

   - scikit-learn's bundled real datasets, :func:`load_tabular`
     (``diabetes``, ``breast_cancer``, ``iris``, ``digits``);
   - generated tasks, seeded and exact: :func:`make_regression`,
     :func:`make_blobs`, :func:`make_moons`, the sequence tasks
     :func:`make_copy_task`, :func:`make_reverse_task`, :func:`make_sort_task`
     and :func:`make_adding_problem`.

2. Real datasets read from their original file formats:
   MNIST (:func:`load_mnist`), CIFAR-10 (:func:`load_cifar10`), IMDB
   (:func:`load_imdb`), Tiny Shakespeare (:func:`load_tiny_shakespeare`) and
   Imagenette (:func:`load_imagenette`).

3. Torch wrappers: :func:`to_tensor_dataset` and :func:`make_loader`.

Where real data comes from
--------------------------
A real dataset file is looked for, in this order, in

1. ``data_root`` (the scripts' ``--data-root DIR``), when given. It may be
   read-only, like a shared copy of the datasets: nothing is ever written or
   created inside a read-only data root;
2. the download cache, :func:`default_cache_dir` (``$MI_DATA_ROOT``, else
   ``<repository root>/data``, which git ignores).

Both use the same layout, torchvision's where it has one::

    MNIST/raw/train-images-idx3-ubyte.gz       (and the three other idx files;
                                                 uncompressed copies work too)
    cifar-10-python.tar.gz                      or cifar-10-batches-py/
                                                 or cifar10_subset/cifar10_subset.npz
    imdb/aclImdb_v1.tar.gz                      or imdb/aclImdb_labeled_50k.tar.gz
                                                 or aclImdb/
    tinyshakespeare/input.txt
    imagenette2-160.tgz                         or imagenette2-160/{train,val}/

If a file is in neither place it is downloaded (unless ``download=False``)
into ``data_root`` when that folder is writable, else into the cache. A
download streams into ``<file>.part`` beside the final name, is checked
(length, then checksum), flushed to disk, and only then renamed to its final
name, so an interrupted download never passes for a complete file. A file
whose checksum is known (:data:`KNOWN_CHECKSUMS`) is verified whenever it is
read, whoever put it there. When a file cannot be found nor downloaded,
:class:`DatasetNotFoundError` says which files are expected, where they were
looked for, where to get them, and that ``--data-root DIR`` points the scripts
at a local copy.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import io
import os
import pickle
import re
import shutil
import tarfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # only for type hints; never imported at run time here
    import torch
    import torchvision

REPO_ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------------------
# Errors: each says what was expected, so the learner never reads a deep traceback.
# --------------------------------------------------------------------------------------


class DatasetNotFoundError(FileNotFoundError):
    """A real dataset is neither on disk nor downloadable (offline, or ``download=False``).

    The message lists the files expected, the folders searched, the URLs, and
    how to fix it (download them there, or pass ``--data-root DIR``).
    """

    def __str__(self) -> str:  # FileNotFoundError would print "[Errno None] ..." otherwise
        return str(self.args[0]) if self.args else ""


class DatasetChecksumError(ValueError):
    """A dataset file's checksum differs from the published one (corrupt or wrong file)."""


class DatasetFormatError(ValueError):
    """A dataset file exists but is not in the expected format (bad header, wrong size...)."""


# --------------------------------------------------------------------------------------
# The train/test split handed to every level
# --------------------------------------------------------------------------------------

TASKS = ("regression", "binary", "multiclass")


@dataclass(eq=False)  # arrays have no single truth value: compare fields yourself
class Split:
    """A train/test split as NumPy arrays.

    Attributes:
        X_train: (N_train, ...) inputs; float64 for tabular data, float32 for images.
        y_train: (N_train,) targets; int64 class labels, or float64 for regression.
        X_test, y_test: the same for the test set.
        name: dataset name (``"mnist"``, ``"cifar10_subset"``, ...).
        task: ``"regression"``, ``"binary"`` or ``"multiclass"``.
        classes: class names, index = label, when known.
        note: a caveat to print beside any result, e.g. that a subset's numbers
            are not comparable to the full dataset's.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    name: str
    task: str
    classes: list[str] | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"Split.task must be one of {TASKS}, got {self.task!r}")
        for part in ("train", "test"):
            X, y = getattr(self, f"X_{part}"), getattr(self, f"y_{part}")
            if len(X) != len(y):
                raise ValueError(
                    f"Split {self.name!r}: X_{part} has {len(X)} rows but y_{part} has {len(y)}"
                )

    @property
    def num_classes(self) -> int | None:
        """Number of classes (None for regression)."""
        if self.task == "regression":
            return None
        if self.classes is not None:
            return len(self.classes)
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    def summary(self) -> str:
        """One line: name, task, and the shape and dtype of each array."""
        def desc(a: np.ndarray) -> str:
            return f"{tuple(a.shape)} {a.dtype}"

        kind = self.task
        if self.task != "regression":
            kind += f", {self.num_classes} classes"
        line = (
            f"Split({self.name!r}, {kind}): X_train {desc(self.X_train)}, "
            f"y_train {desc(self.y_train)}, X_test {desc(self.X_test)}, y_test {desc(self.y_test)}"
        )
        return line + (f"  [note: {self.note}]" if self.note else "")

    __repr__ = summary


# --------------------------------------------------------------------------------------
# Offline real data: scikit-learn's bundled datasets
# --------------------------------------------------------------------------------------

TABULAR = ("diabetes", "breast_cancer", "iris", "digits")
_TABULAR_TASK = {
    "diabetes": "regression",
    "breast_cancer": "binary",
    "iris": "multiclass",
    "digits": "multiclass",
}


def load_tabular(
    name: str, *, test_size: float = 0.2, seed: int = 0, standardize: bool = True
) -> Split:
    """Load one of scikit-learn's bundled real datasets and split it.

    Works offline everywhere: the data ships inside scikit-learn's wheel.

    ===============  ==========  =========  ==========================================
    name             samples     features   target
    ===============  ==========  =========  ==========================================
    diabetes         442         10         disease progression after a year (float)
    breast_cancer    569         30         0 = malignant, 1 = benign
    iris             150         4          3 species
    digits           1,797       64         the digit 0-9 of an 8x8 image (0..16 ink)
    ===============  ==========  =========  ==========================================

    Inputs:
        name: one of :data:`TABULAR`.
        test_size: fraction of samples held out for the test set, in (0, 1).
        seed: seed of the shuffle; the same seed gives the same split.
        standardize: rescale every feature with the TRAINING set's statistics,
            ``x' = (x - mean_train) / std_train``, so nothing about the test set
            leaks into training. A constant feature (``std_train = 0``) is only
            centred (it becomes 0), never divided by zero.

    Returns:
        A :class:`Split`: X float64 (N, D); y float64 (N,) for regression, int64
        labels otherwise. Classification splits are stratified (each class keeps
        its proportion in both halves).
    """
    if name not in TABULAR:
        raise ValueError(f"unknown tabular dataset {name!r}; expected one of {TABULAR}")
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size!r}")
    from sklearn import datasets as skd  # lazy: scikit-learn is slow to import
    from sklearn.model_selection import train_test_split

    bunch = getattr(skd, f"load_{name}")()
    X = np.asarray(bunch.data, dtype=np.float64)
    task = _TABULAR_TASK[name]
    if task == "regression":
        y, classes, stratify = np.asarray(bunch.target, dtype=np.float64), None, None
    else:
        y = np.asarray(bunch.target, dtype=np.int64)
        classes = [str(c) for c in bunch.target_names]
        stratify = y
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=stratify
    )
    if standardize:
        mean = X_train.mean(axis=0)  # (D,)  training statistics only
        std = X_train.std(axis=0)  # (D,)
        std = np.where(std > 0, std, 1.0)  # constant feature: centre only -> 0, no NaN
        X_train = (X_train - mean) / std
        X_test = (X_test - mean) / std
    return Split(X_train, y_train, X_test, y_test, name=name, task=task, classes=classes)


# --------------------------------------------------------------------------------------
# Where files live: data roots, the cache, checksums, downloads
# --------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """Folder that downloads go to: ``$MI_DATA_ROOT`` if set, else ``<repo root>/data``.

    Returns:
        The path (not created here; it is created on the first download).
    """
    env = os.environ.get("MI_DATA_ROOT")
    return Path(env).expanduser() if env else REPO_ROOT / "data"


#: Published checksums, by file name, as (algorithm, hex digest). A file with
#: one of these names is verified whenever it is read, whoever put it there.
#: Imagenette publishes none, so its archive is only checked for length.
KNOWN_CHECKSUMS: dict[str, tuple[str, str]] = {
    # MNIST, as mirrored by torchvision (the original files)
    "train-images-idx3-ubyte.gz": ("md5", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train-labels-idx1-ubyte.gz": ("md5", "d53e105ee54ea40749a09fcbcd1e9432"),
    "t10k-images-idx3-ubyte.gz": ("md5", "9fb629c4189551a2d022fa330f9573f3"),
    "t10k-labels-idx1-ubyte.gz": ("md5", "ec29112dd5afa0611ce80d1b7f02629c"),
    # CIFAR-10, python version
    "cifar-10-python.tar.gz": ("md5", "c58f30108f718f92721af3b95e74349a"),
    # The CIFAR-10 subset (4k/1k) of the curriculum's shared data folder
    "cifar10_subset.npz": (
        "sha256", "5e81f99fe5af185b32d0cb5efbf72c956a858f8e684fdfba6995f9e197878f5c"),
    # IMDB, the official tarball, and the labelled-only repack (no unsup/)
    "aclImdb_v1.tar.gz": (
        "sha256", "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"),
    "aclImdb_labeled_50k.tar.gz": (
        "sha256", "f246d00da34b43aaf39c12270446dc869dceb386a31b2755c758432379216733"),
    # Tiny Shakespeare (char-rnn)
    "input.txt": ("sha256", "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
}


@dataclass(frozen=True)
class _Resource:
    """One thing a dataset needs, and where it may be found or fetched.

    ``candidates`` are paths relative to a data root, in order of preference;
    a trailing ``/`` marks a folder. ``download`` is the candidate that ``urls``
    fetch (tried in order: mirrors of the same bytes).
    """

    label: str
    candidates: tuple[str, ...]
    download: str
    urls: tuple[str, ...]


def _hash_file(path: Path, algorithm: str, chunk: int = 1 << 20) -> str:
    """Hex digest of a file, read in 1 MiB chunks (never the whole file in memory)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_VERIFIED: set[tuple] = set()  # files already verified in this process: (path, size, mtime, hash)


def _verify_checksum(path: Path, *, source: str | None = None) -> None:
    """Check ``path`` against :data:`KNOWN_CHECKSUMS` (if its name is listed there).

    Raises DatasetChecksumError naming the file, the expected and the actual hash.
    """
    known = KNOWN_CHECKSUMS.get(path.name)
    if known is None or not path.is_file():
        return
    algorithm, expected = known
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, algorithm, expected)
    if key in _VERIFIED:
        return
    actual = _hash_file(path, algorithm)
    if actual != expected.lower():
        where = f" (downloaded from {source})" if source else ""
        raise DatasetChecksumError(
            f"checksum mismatch for {path}{where}: expected {algorithm} {expected}, "
            f"got {actual}. The file is corrupt or is not the published one; delete it "
            "and download it again (or replace it with a good copy)."
        )
    _VERIFIED.add(key)


def _fetch(url: str, dest: Path) -> None:
    """Stream ``url`` into the file ``dest``: the one function here that uses the network.

    Shows a tqdm progress bar, checks that the number of bytes received equals
    the server's Content-Length (when it sends one), and flushes the file to
    disk (fsync) before returning. Raises OSError (urllib's URLError is one) on
    any failure (or http.client.HTTPException for a broken HTTP exchange); the
    caller removes the partial file.
    """
    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=60) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        received = 0
        name = dest.name.removesuffix(".part")
        with open(dest, "wb") as out, tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name
        ) as bar:
            while block := response.read(1 << 20):
                out.write(block)
                received += len(block)
                bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
    if total is not None and received != total:
        raise OSError(f"connection closed after {received} of {total} bytes")


def _download(urls: Sequence[str], dest: Path) -> None:
    """Download ``dest`` from the first of ``urls`` that works, atomically.

    ``_fetch`` writes ``<dest>.part`` (a leftover one from an interrupted run is
    overwritten); the part is checked against :data:`KNOWN_CHECKSUMS` and only
    then renamed to ``dest`` (``os.replace`` is atomic within a folder). On any
    failure the part file is removed and ``dest`` never appears.
    """
    # Folders this download creates; a failed download removes them again (when empty),
    # so that a later run does not mistake an empty folder for a dataset.
    created = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        _download_into(urls, dest)
    except BaseException:
        for folder in created:  # deepest first
            try:
                folder.rmdir()
            except OSError:  # not empty (another file arrived), or not ours to remove
                break
        raise


def _download_into(urls: Sequence[str], dest: Path) -> None:
    """The body of `_download`, once ``dest.parent`` exists."""
    part = dest.with_name(dest.name + ".part")
    known = KNOWN_CHECKSUMS.get(dest.name)
    errors = []
    for url in urls:
        try:
            _fetch(url, part)
            if known is not None:
                algorithm, expected = known
                actual = _hash_file(part, algorithm)  # the bytes that reached the disk
                if actual != expected.lower():
                    raise DatasetChecksumError(
                        f"checksum mismatch for {dest.name} downloaded from {url}: expected "
                        f"{algorithm} {expected}, got {actual}. Nothing was saved; try again "
                        "later, or download the file yourself and check it."
                    )
            os.replace(part, dest)
            return
        except (OSError, http.client.HTTPException) as err:  # network/disk: next mirror
            errors.append(f"{url}: {_short(err)}")
        finally:
            part.unlink(missing_ok=True)
    raise OSError("; ".join(errors))


def _short(err: BaseException, limit: int = 200) -> str:
    """A one-line description of an exception, for messages (cut at a word, never mid-word)."""
    text = str(getattr(err, "reason", None) or err).splitlines()[0] if str(err) else ""
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " ..."
    return f"{type(err).__name__}: {text}"


def _is_writable_dir(path: Path) -> bool:
    """True if ``path`` is a folder we may write into.

    Besides ``os.access`` (false on a read-only mount) a folder without any
    write permission bit counts as read-only: root ignores permission bits,
    and we want ``chmod a-w`` to mean "do not write here" for root as well.
    """
    try:
        return path.is_dir() and os.access(path, os.W_OK) and bool(path.stat().st_mode & 0o222)
    except OSError:
        return False


def _search_roots(data_root: str | os.PathLike | None) -> list[tuple[Path, str]]:
    """The folders to search, in order, each with a label for messages."""
    roots = []
    if data_root is not None:
        root = Path(data_root).expanduser()
        if not root.is_dir():
            raise DatasetNotFoundError(
                f"the data root {root} does not exist or is not a folder. Pass --data-root "
                "a folder that holds the datasets, or leave it out to use the download "
                f"cache ({default_cache_dir()})."
            )
        roots.append((root, "--data-root"))
    cache = default_cache_dir()
    if not roots or roots[0][0].resolve() != cache.resolve():
        roots.append((cache, "download cache; set MI_DATA_ROOT to move it"))
    return roots


def _write_root(data_root: str | os.PathLike | None) -> Path:
    """Where downloads and extractions go: a writable ``data_root``, else the cache."""
    if data_root is not None and _is_writable_dir(Path(data_root).expanduser()):
        return Path(data_root).expanduser()
    return default_cache_dir()


def _find(resource: _Resource, roots: list[tuple[Path, str]]) -> Path | None:
    """First existing candidate of ``resource``: roots in order, then candidates in order."""
    for root, _ in roots:
        for rel in resource.candidates:
            path = root / rel
            if path.is_dir() if rel.endswith("/") else path.is_file():
                return path
    return None


def _obtain(
    dataset: str,
    resources: Sequence[_Resource],
    data_root: str | os.PathLike | None,
    download: bool,
) -> list[Path]:
    """Find (or download) every resource of ``dataset``; one clear error if impossible.

    Returns:
        One path per resource, in order: the file or folder found or downloaded.
    Raises:
        DatasetNotFoundError listing every missing file, the folders searched and
        the URLs; DatasetChecksumError if a file with a known checksum is wrong.
    """
    roots = _search_roots(data_root)
    paths: list[Path | None] = [_find(r, roots) for r in resources]
    missing = [i for i, p in enumerate(paths) if p is None]
    reason = "downloading is off (download=False)"
    if missing and download:
        target = _write_root(data_root)
        try:
            for i in missing:
                dest = target / resources[i].download
                _download(resources[i].urls, dest)
                paths[i] = dest
            missing = []
        except OSError as err:  # offline, server error, disk full, read-only cache...
            reason = f"the download into {target} failed ({_short(err)})"
    if missing:
        raise _not_found(dataset, [resources[i] for i in missing], roots, reason) from None
    for p in paths:
        _verify_checksum(p)
    return paths  # type: ignore[return-value]


def _not_found(
    dataset: str, resources: Sequence[_Resource], roots: list[tuple[Path, str]], reason: str
) -> DatasetNotFoundError:
    """Build the one error message a learner sees when a dataset is missing."""
    lines = [f"{dataset} was not found, and {reason}.", ""]
    lines.append("Expected (paths relative to a data root):")
    for r in resources:
        alternatives = "  or  ".join(r.candidates)
        lines.append(f"  {r.label}: {alternatives}")
    lines += ["", "Looked in:"]
    lines += [f"  {root}  ({label})" for root, label in roots]
    lines += ["", "Get the files from:"]
    lines += [f"  {r.urls[0]}  ->  save as {r.download}" for r in resources]
    given = [root for root, label in roots if label == "--data-root"]
    if given:
        advice = (f"Put them into {given[0]}, the --data-root you gave (keeping the "
                  f"sub-folders shown above), or leave --data-root out to download into "
                  f"{roots[-1][0]}.")
    else:
        advice = (f"Download them into {roots[-1][0]} (keeping the sub-folders shown above), "
                  "or pass --data-root DIR (data_root=DIR) naming a folder that holds them.")
    lines += ["", advice]
    return DatasetNotFoundError("\n".join(lines))


def _file_key(path: Path) -> tuple[str, int, int]:
    """(path, size, mtime): the in-memory caches re-read a file that has changed."""
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def _readonly(a: np.ndarray) -> np.ndarray:
    """Mark a cached array read-only so no caller can corrupt the cache."""
    a.setflags(write=False)
    return a


# --------------------------------------------------------------------------------------
# MNIST: the idx format
# --------------------------------------------------------------------------------------

_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_MNIST_FILES = {
    # key: (file stem, idx magic number)
    "train_images": ("train-images-idx3-ubyte", 2051),
    "train_labels": ("train-labels-idx1-ubyte", 2049),
    "test_images": ("t10k-images-idx3-ubyte", 2051),
    "test_labels": ("t10k-labels-idx1-ubyte", 2049),
}


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path_str: str, size: int, mtime_ns: int, magic: int) -> np.ndarray:
    """Parse one idx file (gzipped or not) into a read-only uint8 array.

    The idx format (LeCun et al.): a big-endian header, then raw bytes::

        bytes 0-3   magic = 0x0000 0x08 ndim   (0x08 = unsigned byte data)
                    2049 for labels (ndim 1), 2051 for images (ndim 3)
        then ndim big-endian int32 sizes      (N) or (N, rows, cols)
        then prod(sizes) bytes of data, row-major
    """
    path = Path(path_str)
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            raw = gzip.decompress(f.read()) if head == b"\x1f\x8b" else f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DatasetFormatError(f"{path}: cannot read this idx file ({_short(err)})") from None
    ndim = magic & 0xFF
    header_bytes = 4 + 4 * ndim
    if len(raw) < header_bytes:
        raise DatasetFormatError(f"{path}: {len(raw)} bytes is too short for an idx header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DatasetFormatError(
            f"{path}: bad idx magic number {found}, expected {magic} "
            f"({'images' if magic == 2051 else 'labels'}); the file is corrupt or not MNIST"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    expected = int(np.prod(dims))
    if len(raw) - header_bytes != expected:
        raise DatasetFormatError(
            f"{path}: the header promises {dims} = {expected} bytes of data, "
            f"the file holds {len(raw) - header_bytes}; the file is truncated or corrupt"
        )
    data = np.frombuffer(raw, dtype=np.uint8, offset=header_bytes).reshape(dims)
    return _readonly(data)


def _read_idx(path: Path, magic: int) -> np.ndarray:
    return _read_idx_cached(*_file_key(path), magic)


def load_mnist(
    data_root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    flatten: bool = True,
    normalize: bool = True,
) -> Split:
    """MNIST handwritten digits: 60,000 training and 10,000 test images, 28x28 grey.

    Reads the four idx files directly (no torchvision), from
    ``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``
    (uncompressed copies without ``.gz`` work too). The gzipped files are
    verified against their published md5.

    Inputs:
        data_root: folder with a local copy (may be read-only); see the module docstring.
        download: fetch missing files into the cache (or a writable data_root).
        flatten: X of shape (N, 784) if True, else (N, 28, 28).
        normalize: X float32 in [0, 1] (pixel / 255) if True, else the raw uint8 pixels.

    Returns:
        A :class:`Split` named ``"mnist"``: X float32 (60000, 784) / (10000, 784)
        (or as set above), y int64 labels 0-9.
    """
    resources = [
        _Resource(
            label=stem,
            candidates=(f"MNIST/raw/{stem}.gz", f"MNIST/raw/{stem}"),
            download=f"MNIST/raw/{stem}.gz",
            urls=tuple(m + stem + ".gz" for m in _MNIST_MIRRORS),
        )
        for stem, _ in _MNIST_FILES.values()
    ]
    paths = _obtain("MNIST", resources, data_root, download)
    arrays = {
        key: _read_idx(path, magic)
        for (key, (_, magic)), path in zip(_MNIST_FILES.items(), paths)
    }
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if len(images) != len(labels):
            raise DatasetFormatError(
                f"MNIST {part}: {len(images)} images but {len(labels)} labels; "
                "the idx files do not belong together"
            )

    def images(a: np.ndarray) -> np.ndarray:
        a = a.reshape(len(a), -1) if flatten else a
        # x / 255 maps the 0..255 ink to [0, 1]; both branches return a fresh copy
        return a.astype(np.float32) / np.float32(255.0) if normalize else a.copy()

    return Split(
        images(arrays["train_images"]),
        arrays["train_labels"].astype(np.int64),
        images(arrays["test_images"]),
        arrays["test_labels"].astype(np.int64),
        name="mnist",
        task="multiclass",
        classes=[str(d) for d in range(10)],
    )


# --------------------------------------------------------------------------------------
# CIFAR-10: pickled batches (read from the tar, or an extracted folder), or the subset
# --------------------------------------------------------------------------------------

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
_SUBSET_NOTE = (
    "CIFAR-10 subset (4k train / 1k test): numbers measured on it are NOT comparable "
    "to results on full CIFAR-10"
)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickle only dicts, lists, bytes and NumPy arrays: a pickle may run code, these can't.

    The CIFAR batches are pickles; this refuses any other global so that a
    tampered file cannot execute anything.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        if name == "_reconstruct":  # numpy.core was renamed numpy._core in NumPy 2
            return np.ndarray.__reduce__(np.empty(0))[0]
        return super().find_class(module, name)


def _load_batch(raw: bytes, where: str) -> dict:
    """Unpickle one CIFAR batch (bytes keys, as the Python 2 files were written)."""
    try:
        obj = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:  # any unpickling problem means a bad file
        raise DatasetFormatError(f"{where}: not a CIFAR-10 batch ({_short(err)})") from None
    if not isinstance(obj, dict):
        raise DatasetFormatError(f"{where}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _batch_arrays(batch: dict, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3072) uint8 rows -> (N, 32, 32, 3) images, and (N,) int64 labels.

    Each row stores the red plane, then green, then blue, each 32x32 row-major:
    ``row[c*1024 + i*32 + j]`` is channel c of pixel (i, j).
    """
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except KeyError as err:
        raise DatasetFormatError(f"{where}: missing key {err.args[0]!r}") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DatasetFormatError(
            f"{where}: expected data (N, 3072) and N labels, got data {data.shape} "
            f"and {len(labels)} labels"
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DatasetFormatError(f"{where}: labels must be 0..9")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
    return np.ascontiguousarray(images), labels


@functools.lru_cache(maxsize=2)
def _read_cifar_cached(path_str: str, size: int, mtime_ns: int) -> tuple:
    """Read the six batches from the official tar.gz or an extracted folder, or the npz.

    Returns read-only (X_train, y_train, X_test, y_test, classes, is_subset).
    """
    path = Path(path_str)
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                parts = [z[k] for k in ("x_train", "y_train", "x_test", "y_test")]
        except (KeyError, ValueError, OSError) as err:
            raise DatasetFormatError(
                f"{path}: expected an npz with x_train, y_train, x_test, y_test ({_short(err)})"
            ) from None
        X_train, y_train, X_test, y_test = parts
        for X, y in ((X_train, y_train), (X_test, y_test)):
            if X.ndim != 4 or X.shape[1:] != (32, 32, 3) or len(X) != len(y):
                raise DatasetFormatError(f"{path}: expected x (N, 32, 32, 3) and y (N,)")
        arrays = [X_train.astype(np.uint8), y_train.astype(np.int64),
                  X_test.astype(np.uint8), y_test.astype(np.int64)]
        return (*map(_readonly, arrays), list(CIFAR10_CLASSES), True)

    raws: dict[str, bytes] = {}
    if path.is_dir():  # extracted cifar-10-batches-py/
        for name in [*_CIFAR_BATCHES, "batches.meta"]:
            if (path / name).is_file():
                raws[name] = (path / name).read_bytes()
    else:
        try:
            with tarfile.open(path, "r:*") as tar:
                for member in tar:  # sequential: fast on a gzip stream
                    base = member.name.rsplit("/", 1)[-1]
                    if member.isfile() and base in (*_CIFAR_BATCHES, "batches.meta"):
                        raws[base] = tar.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError) as err:
            raise DatasetFormatError(f"{path}: cannot read this tar ({_short(err)})") from None
    missing = [b for b in _CIFAR_BATCHES if b not in raws]
    if missing:
        raise DatasetFormatError(
            f"{path}: missing CIFAR-10 batch(es) {missing}; expected "
            "cifar-10-batches-py/{data_batch_1..5, test_batch}"
        )
    pairs = [_batch_arrays(_load_batch(raws[b], f"{path}:{b}"), f"{path}:{b}")
             for b in _CIFAR_BATCHES]
    X_train = np.concatenate([p[0] for p in pairs[:5]])  # (50000, 32, 32, 3)
    y_train = np.concatenate([p[1] for p in pairs[:5]])
    X_test, y_test = pairs[5]
    classes = list(CIFAR10_CLASSES)
    if "batches.meta" in raws:
        names = _load_batch(raws["batches.meta"], f"{path}:batches.meta").get(b"label_names")
        if names is not None and len(names) == 10:
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return (*map(_readonly, (X_train, y_train, X_test, y_test)), classes, False)


def load_cifar10(
    data_root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    normalize: bool = True,
) -> Split:
    """CIFAR-10: 50,000 training and 10,000 test colour images, 32x32, ten classes.

    Accepted, in this order of preference, under each data root:

    1. ``cifar-10-python.tar.gz``, the official python version (read straight
       from the archive, no extraction; verified against its md5);
    2. ``cifar-10-batches-py/``, the same archive extracted;
    3. ``cifar10_subset/cifar10_subset.npz``, a 4,000 / 1,000 image subset
       (keys x_train, y_train, x_test, y_test). The Split is then named
       ``"cifar10_subset"`` and its ``note`` warns that results on it are not
       comparable to full CIFAR-10.

    Downloads the official archive from
    https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (163 MB) when none is found.

    Inputs:
        data_root: folder with a local copy (may be read-only).
        download: fetch the archive into the cache (or a writable data_root) if missing.
        normalize: X float32 in [0, 1] if True, else the raw uint8 pixels.

    Returns:
        A :class:`Split`: X (N, 32, 32, 3) channels-last (H, W, RGB), y int64 0-9,
        classes = airplane ... truck.
    """
    resource = _Resource(
        label="CIFAR-10",
        candidates=(
            "cifar-10-python.tar.gz",
            "cifar-10-batches-py/",
            "cifar10_subset/cifar10_subset.npz",
        ),
        download="cifar-10-python.tar.gz",
        urls=(_CIFAR_URL,),
    )
    (path,) = _obtain("CIFAR-10", [resource], data_root, download)
    X_train, y_train, X_test, y_test, classes, is_subset = _read_cifar_cached(*_file_key(path))

    def images(a: np.ndarray) -> np.ndarray:
        return a.astype(np.float32) / np.float32(255.0) if normalize else a.copy()

    return Split(
        images(X_train), y_train.copy(), images(X_test), y_test.copy(),
        name="cifar10_subset" if is_subset else "cifar10",
        task="multiclass",
        classes=list(classes),
        note=_SUBSET_NOTE if is_subset else None,
    )


# --------------------------------------------------------------------------------------
# IMDB movie reviews (Maas et al., 2011)
# --------------------------------------------------------------------------------------

_IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
# aclImdb/{train,test}/{pos,neg}/<id>_<stars>.txt ; unsup/ and every other file are skipped
_IMDB_REVIEW = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/([^/]+\.txt)$")


@functools.lru_cache(maxsize=1)
def _read_imdb_cached(path_str: str, size: int, mtime_ns: int) -> dict[str, tuple]:
    """{"train": (texts, labels), "test": (...)}, each sorted by path inside aclImdb/."""
    path = Path(path_str)
    found: dict[str, list[tuple[str, int, str]]] = {"train": [], "test": []}

    def add(relpath: str, raw: bytes) -> None:
        m = _IMDB_REVIEW.search(relpath)
        if m:
            split, polarity, fname = m.groups()
            text = raw.decode("utf-8", errors="replace")
            found[split].append((f"{split}/{polarity}/{fname}", int(polarity == "pos"), text))

    if path.is_dir():  # an extracted aclImdb/ folder
        for split in ("train", "test"):
            for polarity in ("pos", "neg"):
                for f in (path / split / polarity).glob("*.txt"):
                    add(f"aclImdb/{split}/{polarity}/{f.name}", f.read_bytes())
    else:
        try:
            with tarfile.open(path, "r:*") as tar:
                for member in tar:  # sequential read: seeking back in a gzip stream is slow
                    if member.isfile() and _IMDB_REVIEW.search(member.name):
                        add(member.name, tar.extractfile(member).read())
        except (tarfile.TarError, OSError, EOFError) as err:
            raise DatasetFormatError(f"{path}: cannot read this tar ({_short(err)})") from None
    out = {}
    for split, items in found.items():
        if not items:
            raise DatasetFormatError(
                f"{path}: no reviews under aclImdb/{split}/{{pos,neg}}/*.txt; "
                "is this the IMDB Large Movie Review Dataset?"
            )
        items.sort(key=lambda item: item[0])
        out[split] = (tuple(t for _, _, t in items), _readonly(np.array([y for _, y, _ in items],
                                                                        dtype=np.int64)))
    return out


def load_imdb(
    data_root: str | os.PathLike | None = None, *, download: bool = True
) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """IMDB Large Movie Review Dataset: 25,000 training and 25,000 test reviews.

    Read straight from the archive (no extraction). Accepted, in order, under
    each data root: ``imdb/aclImdb_v1.tar.gz`` or ``aclImdb_v1.tar.gz`` (the
    official tarball, sha256-verified), ``imdb/aclImdb_labeled_50k.tar.gz``
    (a repack with only the labelled reviews, sha256-verified), or an extracted
    ``aclImdb/`` (or ``imdb/aclImdb/``) folder. The unlabelled ``unsup/`` reviews
    are ignored. Reading the 50,000 small files takes several seconds; the
    result is kept in memory for the rest of the process.

    Inputs:
        data_root: folder with a local copy (may be read-only).
        download: fetch the official tarball (84 MB) if nothing is found.

    Returns:
        (train_texts, train_labels, test_texts, test_labels): texts are lists of
        str exactly as in the files (HTML ``<br />`` breaks included); labels are
        (N,) int64, 1 = positive, 0 = negative. Order: sorted by file path
        (``neg/`` before ``pos/``), the same on every machine; shuffle before
        training.
    """
    resource = _Resource(
        label="IMDB",
        candidates=(
            "imdb/aclImdb_v1.tar.gz",
            "aclImdb_v1.tar.gz",
            "imdb/aclImdb_labeled_50k.tar.gz",
            "aclImdb/",
            "imdb/aclImdb/",
        ),
        download="imdb/aclImdb_v1.tar.gz",
        urls=(_IMDB_URL,),
    )
    (path,) = _obtain("IMDB", [resource], data_root, download)
    data = _read_imdb_cached(*_file_key(path))
    (tr_x, tr_y), (te_x, te_y) = data["train"], data["test"]
    return list(tr_x), tr_y.copy(), list(te_x), te_y.copy()


# --------------------------------------------------------------------------------------
# Tiny Shakespeare (char-rnn)
# --------------------------------------------------------------------------------------

_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)


def load_tiny_shakespeare(
    data_root: str | os.PathLike | None = None, *, download: bool = True
) -> str:
    """Tiny Shakespeare: 1,115,394 characters of plays, the char-rnn corpus.

    File: ``<root>/tinyshakespeare/input.txt`` (sha256-verified).

    Inputs:
        data_root: folder with a local copy (may be read-only).
        download: fetch the file (1.1 MB) if missing.

    Returns:
        The whole text as one str. Build the character vocabulary from it.
    """
    resource = _Resource(
        label="Tiny Shakespeare",
        candidates=("tinyshakespeare/input.txt",),
        download="tinyshakespeare/input.txt",
        urls=(_SHAKESPEARE_URL,),
    )
    (path,) = _obtain("Tiny Shakespeare", [resource], data_root, download)
    return path.read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------
# Imagenette (fast.ai): ten easy ImageNet classes
# --------------------------------------------------------------------------------------

#: WordNet id -> class name, for the ten Imagenette classes (ImageFolder sorts by wnid).
IMAGENETTE_CLASSES = {
    "n01440764": "tench",
    "n02102040": "English springer",
    "n02979186": "cassette player",
    "n03000684": "chain saw",
    "n03028079": "church",
    "n03394916": "French horn",
    "n03417042": "garbage truck",
    "n03425413": "gas pump",
    "n03445777": "golf ball",
    "n03888605": "parachute",
}
_IMAGENETTE_SIZES = (160, 320)


def _safe_extract(archive: Path, dest_parent: Path, top: str) -> Path:
    """Extract ``archive`` (whose files live under ``top/``) into ``dest_parent/top``, atomically.

    Extracts into a temporary sibling folder and renames it into place, so a
    half-extracted folder is never mistaken for a complete one. Members that
    would land outside the folder (absolute paths, ``..``, links) are refused.
    """
    final = dest_parent / top
    tmp = dest_parent / f".{top}.extracting-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = []
            for m in tar.getmembers():
                parts = Path(m.name).parts
                if m.name.startswith(("/", "\\")) or ".." in parts or not (m.isfile() or m.isdir()):
                    raise DatasetFormatError(f"{archive}: refusing unsafe member {m.name!r}")
                if parts and parts[0] == top:
                    members.append(m)
            if not any(m.isfile() for m in members):
                raise DatasetFormatError(f"{archive}: no files under {top}/")
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.10.12
                tar.extractall(tmp, members=members, filter="data")
            else:
                tar.extractall(tmp, members=members)
        os.replace(tmp / top, final)
    except (tarfile.TarError, EOFError) as err:
        raise DatasetFormatError(f"{archive}: cannot extract ({_short(err)})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def load_imagenette(
    data_root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    size: int = 160,
    split: str = "train",
    transform=None,
) -> torchvision.datasets.ImageFolder:
    """Imagenette: ten easy ImageNet classes (9,469 train / 3,925 val images).

    Uses ``<root>/imagenette2-<size>/{train,val}/<wnid>/*.JPEG`` when that
    folder exists. Otherwise it finds (or downloads from
    https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz) the archive
    ``imagenette2-<size>.tgz`` and extracts it into a WRITABLE place: the
    data root if it is writable, else the download cache (never into a
    read-only data root). fast.ai publishes no checksum for these archives, so
    none is recorded here: a download is checked only for its length against
    the server's Content-Length.

    Inputs:
        data_root: folder with a local copy (may be read-only).
        download: fetch the archive (about 100 MB for size 160) if missing.
        size: 160 or 320, the length of the images' shorter side.
        split: "train" or "val".
        transform: optional torchvision transform applied to each PIL image.

    Returns:
        A ``torchvision.datasets.ImageFolder``; items are (PIL image or
        transformed tensor, int label), labels index the sorted wnids
        (``dataset.classes``); :data:`IMAGENETTE_CLASSES` names them.
    """
    if size not in _IMAGENETTE_SIZES:
        raise ValueError(f"Imagenette size must be one of {_IMAGENETTE_SIZES}, got {size!r}")
    if split not in ("train", "val"):
        raise ValueError(f"Imagenette split must be 'train' or 'val', got {split!r}")
    top = f"imagenette2-{size}"
    resource = _Resource(
        label="Imagenette",
        candidates=(f"{top}/", f"{top}.tgz"),
        download=f"{top}.tgz",
        urls=(f"https://s3.amazonaws.com/fast-ai-imageclas/{top}.tgz",),
    )
    (path,) = _obtain("Imagenette", [resource], data_root, download)
    if path.is_file():  # the archive: reuse an earlier extraction, else extract once
        target = _write_root(data_root)
        extracted = target / top
        if not extracted.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            extracted = _safe_extract(path, target, top)
        path = extracted
    folder = path / split
    if not folder.is_dir():
        raise DatasetFormatError(
            f"{path}: no {split}/ folder; expected {top}/{{train,val}}/<wnid>/*.JPEG"
        )
    from torchvision.datasets import ImageFolder  # lazy: keeps this module torch-free

    return ImageFolder(str(folder), transform=transform)


# --------------------------------------------------------------------------------------
# Generated tasks: seeded, exact, offline
# --------------------------------------------------------------------------------------


def make_regression(
    n: int = 200, d: int = 3, noise: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A linear regression problem with known true parameters.

    ``y = X w_true + b_true + noise * eps``,  X, w_true, b_true, eps ~ N(0, 1).

    Returns:
        X (n, d) float64, y (n,) float64, w_true (d,) float64, b_true float.
    """
    _check_positive(n=n, d=d)
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    w_true = rng.standard_normal(d)
    b_true = float(rng.standard_normal())
    X = rng.standard_normal((n, d))
    y = X @ w_true + b_true + noise * rng.standard_normal(n)
    return X, y, w_true, b_true


def make_blobs(
    n: int = 300, centers: int = 3, d: int = 2, std: float = 1.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters for classification: class k ~ N(mu_k, std^2 I).

    The centres mu_k are drawn uniformly in [-5, 5]^d; the classes are as
    balanced as n allows (sizes differ by at most one) and the rows are shuffled.

    Returns:
        X (n, d) float64, y (n,) int64 in 0..centers-1.
    """
    _check_positive(n=n, centers=centers, d=d)
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    rng = np.random.default_rng(seed)
    mu = rng.uniform(-5.0, 5.0, size=(centers, d))  # (K, d)
    y = rng.permutation(np.arange(n) % centers).astype(np.int64)  # balanced, shuffled
    X = mu[y] + std * rng.standard_normal((n, d))  # (n, d)
    return X, y


def make_moons(n: int = 300, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles, the classic non-linearly-separable 2-D task.

    Class 0: (cos t, sin t); class 1: (1 - cos t, 1/2 - sin t); t ~ U(0, pi);
    then Gaussian noise of standard deviation ``noise`` on both coordinates.

    Returns:
        X (n, 2) float64, y (n,) int64 in {0, 1}; classes as balanced as n allows.
    """
    _check_positive(n=n)
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 2).astype(np.int64)
    t = rng.uniform(0.0, np.pi, size=n)
    X = np.where(
        (y == 0)[:, None],
        np.stack([np.cos(t), np.sin(t)], axis=1),  # upper moon, centred at (0, 0)
        np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1),  # lower moon, centred at (1, 1/2)
    )
    return X + noise * rng.standard_normal((n, 2)), y


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _random_tokens(n: int, seq_len: int, vocab: int, seed: int, reserved: int) -> np.ndarray:
    _check_positive(n=n, seq_len=seq_len, vocab=vocab)
    if not 0 <= reserved < vocab:
        raise ValueError(f"reserved must be in [0, vocab={vocab}), got {reserved}")
    rng = np.random.default_rng(seed)
    return rng.integers(reserved, vocab, size=(n, seq_len), dtype=np.int64)


def make_copy_task(
    n: int, seq_len: int, vocab: int, seed: int = 0, *, reserved: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Copy: the target repeats the source.

    Tokens are uniform in [reserved, vocab); keep ``reserved`` low ids free for
    special tokens (padding, start-of-sequence) that a seq2seq model needs.

    Returns:
        src, tgt: int64 (n, seq_len), tgt == src (a copy, not a view).
    """
    src = _random_tokens(n, seq_len, vocab, seed, reserved)
    return src, src.copy()


def make_reverse_task(
    n: int, seq_len: int, vocab: int, seed: int = 0, *, reserved: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Reverse: ``tgt[i, t] = src[i, seq_len - 1 - t]``.

    Returns:
        src, tgt: int64 (n, seq_len).
    """
    src = _random_tokens(n, seq_len, vocab, seed, reserved)
    return src, np.ascontiguousarray(src[:, ::-1])


def make_sort_task(
    n: int, seq_len: int, vocab: int, seed: int = 0, *, reserved: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Sort: the target is the source sorted ascending along the sequence.

    Returns:
        src, tgt: int64 (n, seq_len).
    """
    src = _random_tokens(n, seq_len, vocab, seed, reserved)
    return src, np.sort(src, axis=1)


def make_adding_problem(n: int, seq_len: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015's version).

    Each sequence has two channels: ``X[:, t, 0] ~ U(0, 1)`` values and
    ``X[:, t, 1]`` markers, exactly two of them equal to 1: one at a position
    in the first half ``[0, seq_len // 2)``, one in the second half. The target
    is the sum of the two marked values, so the model must remember one value
    across up to seq_len steps. Always predicting 1 gives MSE ~ 0.167, the
    baseline to beat.

    Returns:
        X (n, seq_len, 2) float32, y (n,) float32 in [0, 2).
    """
    _check_positive(n=n)
    if int(seq_len) != seq_len or seq_len < 2:
        raise ValueError(f"seq_len must be an integer >= 2 (one marker per half), got {seq_len!r}")
    rng = np.random.default_rng(seed)
    half = seq_len // 2
    values = rng.uniform(0.0, 1.0, size=(n, seq_len)).astype(np.float32)  # (n, T)
    first = rng.integers(0, half, size=n)  # marker position in [0, T/2)
    second = rng.integers(half, seq_len, size=n)  # marker position in [T/2, T)
    markers = np.zeros((n, seq_len), dtype=np.float32)
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    X = np.stack([values, markers], axis=-1)  # (n, T, 2)
    y = values[rows, first] + values[rows, second]  # (n,) float32
    return X, y


# --------------------------------------------------------------------------------------
# Torch side (torch is imported only inside these functions)
# --------------------------------------------------------------------------------------


def _as_tensor(a) -> torch.Tensor:
    """ndarray (or array-like) -> tensor: float64 stays float64, other floats -> float32,
    integers and booleans -> int64 (the label dtype cross-entropy wants)."""
    import torch

    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.dtype == np.float64:
        pass
    elif np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
        a = a.astype(np.int64)
    else:
        raise TypeError(f"expected a numeric array, got dtype {a.dtype}")
    return torch.from_numpy(np.ascontiguousarray(a))


def to_tensor_dataset(X, y) -> torch.utils.data.TensorDataset:
    """Wrap arrays as a ``TensorDataset`` whose items are ``(X[i], y[i])``.

    Inputs:
        X: (N, ...) array; y: (N, ...) array.
    Returns:
        TensorDataset of tensors sharing memory with contiguous copies of the
        inputs. float64 stays float64 (gradient checks need it); other float
        dtypes become float32; integer and bool arrays become int64.
    """
    from torch.utils.data import TensorDataset

    X_t, y_t = _as_tensor(X), _as_tensor(y)
    if X_t.ndim == 0 or y_t.ndim == 0 or len(X_t) != len(y_t):
        raise ValueError(
            "X and y need the same number of rows, "
            f"got X {tuple(X_t.shape)} and y {tuple(y_t.shape)}"
        )
    return TensorDataset(X_t, y_t)


def make_loader(
    X, y, *, batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False
) -> torch.utils.data.DataLoader:
    """A DataLoader over (X, y) whose shuffling is reproducible.

    The order of batches comes from a ``torch.Generator`` seeded with ``seed``
    and owned by the loader, so it does not depend on (nor disturb) the global
    torch seed. Each new epoch draws a new permutation from that generator: the
    sequence of epochs is the same on every run with the same seed.

    Inputs:
        X: (N, ...) array; y: (N, ...) array (dtypes as in :func:`to_tensor_dataset`).
        batch_size: rows per batch; the last batch is smaller unless drop_last.
    Returns:
        torch.utils.data.DataLoader yielding (X_batch, y_batch) tensors.
    """
    import torch
    from torch.utils.data import DataLoader

    _check_positive(batch_size=batch_size)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        to_tensor_dataset(X, y),
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        generator=generator,
    )


# --------------------------------------------------------------------------------------
# One entry point for the scripts' --dataset option
# --------------------------------------------------------------------------------------

ARRAY_DATASETS = (*TABULAR, "mnist", "cifar10")


def load_arrays(
    name: str, data_root: str | os.PathLike | None = None, *, download: bool = True, **kw
) -> Split:
    """Load any dataset that comes as arrays, by name (what ``--dataset NAME`` passes).

    Inputs:
        name: one of :data:`ARRAY_DATASETS`: the tabular sets (which ignore
            data_root and download: they ship with scikit-learn), "mnist", "cifar10".
        data_root, download: as in :func:`load_mnist`.
        **kw: passed on to the loader (e.g. ``flatten=False`` for MNIST,
            ``test_size=0.3`` for a tabular set).
    Returns:
        The loader's :class:`Split`.
    """
    if name in TABULAR:
        return load_tabular(name, **kw)
    if name == "mnist":
        return load_mnist(data_root, download=download, **kw)
    if name == "cifar10":
        return load_cifar10(data_root, download=download, **kw)
    raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(ARRAY_DATASETS)}")


# --------------------------------------------------------------------------------------
# Image batches for the vision lessons (03 LeNet, 04 VGG, 05 ResNet)
# --------------------------------------------------------------------------------------

IMAGE_DATASETS = ("digits", "mnist", "cifar10")
# How the pixels are rescaled, each with the training images' statistics only:
IMAGE_NORMALIZATIONS = (
    None,  # ink / colour in [0, 1], as loaded
    "standardize",  # (x - mean) / std, ONE mean and std over every training pixel
    "lecun",  # -0.1 + 1.275 x: background -0.1, ink 1.175 (LeCun et al. 1998, II-B)
    "per_channel",  # (x - mean_c) / std_c per colour channel (VGG's "mean RGB value")
    "per_pixel_mean",  # x - mean image (He et al. 2015, Section 4.2)
)


def digits_as_images(X: np.ndarray, size: int = 32, channels: int = 1) -> np.ndarray:
    """scikit-learn's 8x8 digits as (N, channels, size, size) images, ink in [0, 1].

    Each pixel becomes an s x s block (nearest-neighbour upsampling, s = size / 8 - 1) and
    4 pixels of background surround the digit: size 32 puts a 24x24 digit in LeNet's 32x32
    field, about MNIST's proportions (a 20-pixel digit in 28); size 16 keeps the 8x8 digit
    (s = 1), four times cheaper to train on. The grey image is repeated in every channel.

    Inputs:  X (N, 64) raw ink 0..16 (``load_tabular("digits", standardize=False)``);
             size - a multiple of 8, >= 16; channels - 1 (grey) or 3 (RGB networks).
    Returns: (N, channels, size, size) float32.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != 64:
        raise ValueError(f"digits: expected (N, 64) pixel rows, got shape {X.shape}")
    if size < 16 or size % 8:
        raise ValueError(f"digits: size must be a multiple of 8, >= 16; got {size}")
    scale = size // 8 - 1
    pad = (size - 8 * scale) // 2  # 4
    images = (X / np.float32(16.0)).reshape(-1, 1, 8, 8)  # (N, 1, 8, 8) ink in [0, 1]
    images = images.repeat(scale, axis=2).repeat(scale, axis=3)  # (N, 1, 8s, 8s)
    images = np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))  # (N, 1, size, size)
    return np.repeat(images, channels, axis=1) if channels != 1 else images


def _normalize_images(X_train: np.ndarray, X_test: np.ndarray, how: str | None):
    """Rescale both sets with the statistics of X_train (N, C, H, W) float32; see
    :data:`IMAGE_NORMALIZATIONS`. Returns (X_train, X_test), float32."""
    if how is None:
        return X_train, X_test
    if how == "standardize":
        mean, std = X_train.mean(dtype=np.float64), X_train.std(dtype=np.float64)
        scale = np.float32(1.0 / std if std > 0 else 1.0)
        return (X_train - np.float32(mean)) * scale, (X_test - np.float32(mean)) * scale
    if how == "lecun":
        return tuple((np.float32(-0.1) + np.float32(1.275) * X).astype(np.float32)
                     for X in (X_train, X_test))
    if how == "per_channel":
        mean = X_train.mean(axis=(0, 2, 3), keepdims=True)  # (1, C, 1, 1)
        std = X_train.std(axis=(0, 2, 3), keepdims=True) + np.float32(1e-6)
        return tuple(((X - mean) / std).astype(np.float32) for X in (X_train, X_test))
    mean = X_train.mean(axis=0, keepdims=True)  # (1, C, H, W): the mean image
    return X_train - mean, X_test - mean


def _size_pair(size) -> tuple[int, int]:
    """An int N (a square N x N) or an (H, W) pair, as (H, W) ints."""
    return (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))


def read_image_folder(directory: str | Path, image_size: int | tuple[int, int] | None = None,
                      classes: Sequence[str] | None = None
                      ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The images of ``directory/<class>/...`` (torchvision's ImageFolder layout), as RGB.

    Every file of a class sub-folder (its sub-folders included; hidden files skipped) must be
    an image PIL reads; files beside the class folders are ignored. Classes: the sub-folder
    names in sorted order, or ``classes`` (the training classes, for a test folder: labels
    then index into them, and a folder of another name is an error).
    Inputs:  image_size - resize every image to (H, W) (an int: square); None keeps the
             images' own size, which must then be the same for all.
    Returns: (images (N, H, W, 3) uint8, labels (N,) int64, class names).
    Raises:  DatasetNotFoundError (no such folder) or DatasetFormatError naming the file or
             folder: no class folders, an empty class, a file that is not an image, mixed
             sizes without image_size, fewer than 2 classes, an unknown test class.
    """
    from PIL import Image, UnidentifiedImageError

    directory = Path(directory)
    layout = (f"one sub-folder per class, each holding that class's images, e.g. "
              f"{directory / 'cat' / '1.png'} and {directory / 'dog' / '2.jpg'}")
    if not directory.is_dir():
        raise DatasetNotFoundError(f"{directory}: no such folder (expected {layout})")
    folders = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < (1 if classes else 2):
        raise DatasetFormatError(f"{directory}: {len(folders)} class sub-folder(s); expected "
                                 f"{layout} (at least 2 classes to train on)")
    names = list(classes) if classes else [folder.name for folder in folders]
    size = None if image_size is None else _size_pair(image_size)
    images, labels, first = [], [], None
    for folder in folders:
        if folder.name not in names:
            raise DatasetFormatError(f"{folder}: class {folder.name!r} is not among the "
                                     f"training classes {names}")
        files = sorted(p for p in folder.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(folder).parts))
        if not files:
            raise DatasetFormatError(f"{folder}: class {folder.name!r} has no images; every "
                                     "class sub-folder needs at least one")
        for path in files:
            try:
                with Image.open(path) as opened:
                    image = opened.convert("RGB")  # decodes the whole file
            except (UnidentifiedImageError, OSError) as error:
                raise DatasetFormatError(f"{path}: not an image PIL can read ({error}); the "
                                         "class folders must hold only images (PNG, JPEG, "
                                         "...)") from None
            if size is not None:
                image = image.resize(size[::-1], Image.Resampling.BICUBIC)  # PIL: (W, H)
            elif first is None:
                first = (path, image.size)
            elif image.size != first[1]:
                raise DatasetFormatError(
                    f"{path} is {image.size[0]}x{image.size[1]} pixels but {first[0]} is "
                    f"{first[1][0]}x{first[1][1]}: images of mixed sizes need a size to resize "
                    "them to (image_size=N; --image-size N in the scripts)")
            images.append(np.asarray(image))  # (H, W, 3)
            labels.append(names.index(folder.name))
    return np.stack(images), np.array(labels, dtype=np.int64), names


def load_image_folders(train_dir: Path, test_dir: Path | None,
                       image_size: int | tuple[int, int] | None, test_fraction: float,
                       seed: int = 0) -> Split:
    """A user's images as a Split: X (N, 3, H, W) float32 in [0, 1]. Without ``test_dir``,
    ``test_fraction`` of each class (at least one image of any class with two or more) is
    held out at random (``seed``)."""
    train_x, train_y, classes = read_image_folder(train_dir, image_size)
    if test_dir is not None:
        size = image_size or train_x.shape[1:3]
        test_x, test_y, _ = read_image_folder(test_dir, tuple(size), classes)
    else:
        rng = np.random.default_rng(seed)
        held = [index for label in range(len(classes))
                for index in rng.permutation(np.flatnonzero(train_y == label))[
                    :min(max(1, round(test_fraction * np.sum(train_y == label))),
                         np.sum(train_y == label) - 1)]]
        if not held:
            raise DatasetFormatError(f"{train_dir}: too few images to hold out a test share "
                                     "(each class has one); give --test-dir")
        keep = np.setdiff1d(np.arange(len(train_y)), held)
        test_x, test_y, train_x, train_y = train_x[held], train_y[held], train_x[keep], \
            train_y[keep]
    to_float = lambda x: x.transpose(0, 3, 1, 2).astype(np.float32) / 255.0  # noqa: E731
    return Split(to_float(train_x), train_y, to_float(test_x), test_y, name="folder",
                 task="multiclass", classes=classes)


def load_images(
    dataset: str,
    *,
    size: int = 32,
    channels: int = 1,
    normalize: str | None = None,
    data_root: str | os.PathLike | None = None,
    seed: int = 0,
    download: bool = True,
) -> Split:
    """A vision lesson's dataset as (N, C, size, size) float32 images, normalised.

    - ``digits`` (offline): scikit-learn's 8x8 digits enlarged by :func:`digits_as_images`;
      ``seed`` picks the train/test split (1,437 / 360 images).
    - ``mnist``: the 28x28 images zero-padded to ``size`` (LeNet's 32: 2 pixels a side).
    - ``cifar10``: the 32x32 colour images, channels first (``size`` 32, ``channels`` 3).

    Inputs:
        dataset: one of :data:`IMAGE_DATASETS`.
        size, channels: the images' side and channels (grey digits are repeated).
        normalize: one of :data:`IMAGE_NORMALIZATIONS`, with training statistics only.
        data_root, download: where MNIST / CIFAR-10 live, as in :func:`load_mnist`.
    Returns:
        A :class:`Split`: X_train, X_test (N, C, size, size) float32; y int64; classes
        (names by label); note (the CIFAR-10 subset's caveat, else None).
    Raises:
        DatasetNotFoundError (and the other dataset errors) for MNIST and CIFAR-10.
    """
    if dataset not in IMAGE_DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {IMAGE_DATASETS}")
    if normalize not in IMAGE_NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {IMAGE_NORMALIZATIONS}, got {normalize!r}")
    if channels not in (1, 3) or (dataset == "cifar10" and (channels, size) != (3, 32)):
        raise ValueError(f"{dataset}: cannot give {channels}-channel {size}x{size} images "
                         "(grey sets: 1 or 3 channels; cifar10: 3 channels, 32x32)")
    if dataset == "digits":
        split = load_tabular("digits", standardize=False, seed=seed)  # raw ink 0..16
        X_train, X_test = (digits_as_images(X, size, channels)
                           for X in (split.X_train, split.X_test))
    elif dataset == "mnist":
        if size < 28 or size % 2:
            raise ValueError(f"mnist: size must be even and >= 28, got {size}")
        split = load_mnist(data_root, download=download, flatten=False)  # (N, 28, 28) in [0, 1]
        pad = (size - 28) // 2
        X_train, X_test = (np.repeat(np.pad(np.asarray(X, np.float32)[:, None],
                                            ((0, 0), (0, 0), (pad, pad), (pad, pad))),
                                     channels, axis=1)
                           for X in (split.X_train, split.X_test))  # (N, C, size, size)
    else:
        split = load_cifar10(data_root, download=download)  # (N, 32, 32, 3) in [0, 1]
        X_train, X_test = (np.ascontiguousarray(X.transpose(0, 3, 1, 2))  # (N, 3, 32, 32)
                           for X in (split.X_train, split.X_test))
    X_train, X_test = _normalize_images(X_train, X_test, normalize)
    classes = split.classes or [str(k) for k in range(10)]
    return Split(X_train, split.y_train, X_test, split.y_test, name=split.name,
                 task="multiclass", classes=classes, note=split.note)


def random_crop_flip(x: torch.Tensor, padding: int = 4, flip: bool = True,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """The standard CIFAR augmentation of a batch (He et al. 2015, Section 4.2): pad every
    image with ``padding`` zeros on each side, cut a random crop of the original size, and
    (``flip``) mirror it left-right with probability 1/2; each image draws its own.

    Inputs:  x (N, C, H, W) tensor (normalised: the zeros are the mean colour); padding >= 0;
             generator - a torch.Generator (None: torch's global one)
    Returns: (N, C, H, W), a new tensor on x's device
    """
    import torch

    if x.ndim != 4:
        raise ValueError(f"random_crop_flip: expected (N, C, H, W), got {tuple(x.shape)}")
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))  # (N, C, H+2p, W+2p)
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (top[:, None] + torch.arange(h)).to(x.device)  # (N, H): the rows each image keeps
    cols = (left[:, None] + torch.arange(w)).to(x.device)  # (N, W)
    if flip:
        mirror = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        cols = torch.where(mirror[:, None], cols.flip(1), cols)  # read the row right to left
    batch = torch.arange(n, device=x.device)[:, None, None]
    # advanced indexing with (N,1,1), (N,H,1), (N,1,W) index arrays puts those dims first
    crops = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N,H,W,C)
    return crops.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
