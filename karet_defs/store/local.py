"""``LocalStore``: the embedded default, an ``ObjectStore`` over a local directory with S3 semantics.

Each key is a file under ``root`` (``a/b.csv`` → ``root/a/b.csv``); folders exist only while they hold
objects, as on S3. Writes go to a temp file in ``root/.karet-tmp/`` (same filesystem, never listed), are
fsynced and then ``os.replace``d into place, so readers see the old body or the new one. Every mutation
holds an exclusive ``flock`` on a lock file chosen by the key, which makes conditional puts a real
compare-and-swap across threads and processes. ETags are the hex MD5 of the body, as for a single-part S3
upload; to spare re-hashing on every listing the digest is remembered in an extended attribute of the
file itself, stamped with its size and mtime so that any later rewrite invalidates it.
"""

import builtins
import fcntl
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from karet_defs.errors import ObjectNotFound, PreconditionFailed, StoreError
from karet_defs.scratch import reap_orphans, scratch_prefix
from karet_defs.store.base import ObjectInfo, TableLocation, normalise_etag

TMP_DIR_NAME = ".karet-tmp"
# Top-level folders of the data directory that are the process's own (temp files, generated secrets),
# never objects: not listed, not readable or writable as keys.
RESERVED_NAMES = frozenset({TMP_DIR_NAME, ".karet-secrets", ".karet-cache"})
_LOCK_STRIPES = 256
_CHUNK = 1024 * 1024
_ETAG_XATTR = "user.karet.md5"
# A concurrent delete may remove a freshly created (still empty) parent folder before our rename lands.
_REPLACE_ATTEMPTS = 5


class LocalStore:
    """An ``ObjectStore`` whose objects are the files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # Partial puts of killed processes are never visible, but they would fill the disk over time.
        reap_orphans(self._tmp_dir)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    @property
    def _tmp_dir(self) -> Path:
        return self.root / TMP_DIR_NAME

    def list(self, prefix: str, *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` in lexicographic key order, fetched page by page."""
        folder = prefix.rpartition("/")[0]
        if prefix.startswith("/") or "\\" in prefix or "\x00" in prefix:
            raise StoreError(f"Invalid prefix {prefix!r}: it must be a relative '/'-separated key prefix.")
        if folder:
            _check_key(folder, what="prefix")
        key_base = f"{folder}/" if folder else ""
        return self._walk(self.root / folder, key_base, prefix, start_after)

    def head(self, key: str) -> ObjectInfo | None:
        """Metadata of one object, or None when it does not exist."""
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                return _info(f, key)
        except _MISSING:
            return None
        except OSError as exc:
            raise StoreError(f"Cannot read object {key!r}: {exc}") from exc

    def get(self, key: str) -> bytes:
        """The whole object body."""
        path = self._path(key)
        try:
            return path.read_bytes()
        except _MISSING as exc:
            raise _not_found(key) from exc
        except OSError as exc:
            raise StoreError(f"Cannot read object {key!r}: {exc}") from exc

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` inclusive (HTTP Range semantics)."""
        _check_range(start, end)
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if start >= size:
                    # S3 answers 416 InvalidRange here; mirror it so callers see one behaviour.
                    raise StoreError(
                        f"The requested range bytes={start}-{end} is not satisfiable: "
                        f"{key!r} has {size} bytes."
                    )
                f.seek(start)
                return f.read(end - start + 1)
        except _MISSING as exc:
            raise _not_found(key) from exc
        except OSError as exc:
            raise StoreError(f"Cannot read object {key!r}: {exc}") from exc

    def download(self, key: str, dest: Path) -> None:
        """Copy an object into a local file (streamed, never the whole body in memory)."""
        path = self._path(key)
        dest = Path(dest)
        part = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            shutil.copyfile(path, part)
            os.replace(part, dest)
        except _MISSING as exc:
            part.unlink(missing_ok=True)
            if not path.is_file():
                raise _not_found(key) from exc
            raise StoreError(f"Cannot download {key!r} to {dest}: {exc}") from exc
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise StoreError(f"Cannot download {key!r} to {dest}: {exc}") from exc

    def table_location(self, prefix: str) -> TableLocation:
        """The Delta table rooted at ``prefix``: a folder under the store's root."""
        root = self._path(prefix.rstrip("/")).resolve()
        return TableLocation(uri=str(root), storage_options={}, local_root=root)

    def local_path(self, key: str) -> Path | None:
        """The file holding the object (``ObjectNotFound`` when there is none)."""
        path = self._path(key)
        if not path.is_file():
            raise _not_found(key)
        return path

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Write an object atomically (readers see the old or the new body, never a part); return its ETag."""
        path = self._path(key)  # content_type: a local file carries no metadata
        tmp, etag = self._write_temp(key, [data])
        self._publish(key, path, tmp, if_match=if_match, if_none_match=if_none_match)
        return etag

    def put_file(self, key: str, src: Path, *, content_type: str | None = None) -> str:
        """Upload a local file atomically; return its ETag."""
        path = self._path(key)
        tmp, etag = self._write_temp(key, _read_chunks(Path(src)))
        self._publish(key, path, tmp, if_match=None, if_none_match=False)
        return etag

    def delete(self, key: str) -> None:
        """Remove one object; a missing key is not an error."""
        path = self._path(key)
        with self._lock(key):
            try:
                path.unlink()
            except _MISSING:
                return
            except OSError as exc:
                raise StoreError(f"Cannot delete object {key!r}: {exc}") from exc
            self._prune_empty_dirs(path.parent)

    # ``builtins.list``: inside this class body ``list`` names the method above.
    def delete_many(self, keys: builtins.list[str]) -> int:
        """Remove many objects (batched); return how many were asked for."""
        for key in keys:
            self._path(key)
        for key in keys:
            self.delete(key)
        return len(keys)

    def _path(self, key: str) -> Path:
        _check_key(key)
        return self.root / key

    def _walk(
        self, folder: Path, key_base: str, prefix: str, start_after: str | None
    ) -> Iterator[ObjectInfo]:
        # Recursing in order of ``name + "/"`` for folders yields keys in S3's byte order, so ``a.b`` comes
        # before everything under ``a/`` ('.' < '/') and ``a0`` after it; code-point order of str equals
        # UTF-8 byte order.
        try:
            with os.scandir(folder) as it:
                entries = [(e.name + "/" if _is_dir(e) else e.name, e.name) for e in it]
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise StoreError(f"Cannot list {folder}: {exc}") from exc
        for sort_name, name in sorted(entries):
            if not _is_valid_segment(name) or (not key_base and name in RESERVED_NAMES):
                continue
            key = key_base + sort_name
            if sort_name.endswith("/"):
                if not (key.startswith(prefix) or prefix.startswith(key)):
                    continue
                # Skip a whole folder when every key in it sorts at or before ``start_after``.
                if start_after is not None and start_after >= key and not start_after.startswith(key):
                    continue
                yield from self._walk(folder / name, key, prefix, start_after)
            elif key.startswith(prefix) and (start_after is None or key > start_after):
                try:
                    remembered = _remembered_info(os.path.join(folder, name), key)
                    if remembered is not None:
                        yield remembered
                        continue
                    with open(folder / name, "rb") as f:
                        yield _info(f, key)
                except _MISSING:
                    continue  # deleted while we listed: S3 would not show it either
                except OSError as exc:
                    raise StoreError(f"Cannot read object {key!r}: {exc}") from exc

    def _write_temp(self, key: str, chunks: Iterable[bytes]) -> tuple[Path, str]:
        try:
            self._tmp_dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self._tmp_dir, prefix=scratch_prefix("put"), suffix=".tmp")
        except OSError as exc:
            raise StoreError(f"Cannot write object {key!r}: {exc}") from exc
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                digest = hashlib.md5(usedforsecurity=False)
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
                etag = digest.hexdigest()
                _remember_etag(out.fileno(), os.fstat(out.fileno()), etag)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"Cannot write object {key!r}: {exc}") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, etag

    def _publish(self, key: str, path: Path, tmp: Path, *, if_match: str | None, if_none_match: bool) -> None:
        try:
            with self._lock(key):
                if if_match is not None or if_none_match:
                    current = _current_etag(path)
                    if if_none_match and current is not None:
                        raise PreconditionFailed(f"Object {key!r} already exists.")
                    expected = normalise_etag(if_match) if if_match is not None else None
                    if expected is not None and current != expected:
                        raise PreconditionFailed(
                            f"Object {key!r} changed: its ETag is {current!r}, not {expected!r}."
                        )
                self._replace(key, tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def _replace(self, key: str, tmp: Path, path: Path) -> None:
        for attempt in range(_REPLACE_ATTEMPTS):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, path)
                break
            except (FileExistsError, NotADirectoryError) as exc:
                raise StoreError(
                    f"Cannot write object {key!r}: a parent of it is itself an object in the local store."
                ) from exc
            except IsADirectoryError as exc:
                raise StoreError(
                    f"Cannot write object {key!r}: other objects live under {key + '/'!r} in the local store."
                ) from exc
            except FileNotFoundError as exc:
                if attempt == _REPLACE_ATTEMPTS - 1:
                    raise StoreError(f"Cannot write object {key!r}: {exc}") from exc
            except OSError as exc:
                raise StoreError(f"Cannot write object {key!r}: {exc}") from exc
        _fsync_dir(path.parent)

    def _prune_empty_dirs(self, folder: Path) -> None:
        # S3 has no folders: drop the ones the last delete emptied, up to (never including) the root.
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    @contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        # Striped lock files keep their number bounded; two keys sharing a stripe only wait for each other.
        stripe = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % _LOCK_STRIPES
        locks = self._tmp_dir / "locks"
        try:
            locks.mkdir(parents=True, exist_ok=True)
            fd = os.open(locks / f"{stripe:03d}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"Cannot lock object {key!r}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock


_MISSING = (FileNotFoundError, IsADirectoryError, NotADirectoryError)


def _check_key(key: str, *, what: str = "key") -> None:
    if not key:
        raise StoreError(f"Invalid object {what}: it is empty.")
    if key.startswith("/") or "\\" in key or "\x00" in key:
        raise StoreError(f"Invalid object {what} {key!r}: it must be a relative '/'-separated path.")
    segments = key.split("/")
    if not all(_is_valid_segment(s) for s in segments):
        raise StoreError(f"Invalid object {what} {key!r}: empty, '.' and '..' segments are not allowed.")
    if segments[0] in RESERVED_NAMES:
        raise StoreError(f"Invalid object {what} {key!r}: {segments[0]!r} is reserved by the local store.")


def _is_valid_segment(name: str) -> bool:
    return name not in ("", ".", "..") and "\\" not in name


def _check_range(start: int, end: int) -> None:
    if start < 0 or end < start:
        raise StoreError(f"Invalid byte range {start}-{end}: need 0 <= start <= end.")


def _not_found(key: str) -> ObjectNotFound:
    return ObjectNotFound(f"Object {key!r} does not exist.")


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _remembered_info(path: str, key: str) -> ObjectInfo | None:
    """The object's info when its remembered ETag still matches its size and mtime, else None.

    Two calls by path instead of open, fstat, read the attribute and close: listings of 100,000 objects (a
    sensor tick) are mostly this. A file replaced between the two calls fails the stamp check and is opened.
    """
    st = os.stat(path)
    etag = _remembered_etag(path, st)
    return None if etag is None else _object_info(key, st, etag)


def _info(f: BinaryIO, key: str) -> ObjectInfo:
    st = os.fstat(f.fileno())
    return _object_info(key, st, _etag(f, st))


def _object_info(key: str, st: os.stat_result, etag: str) -> ObjectInfo:
    return ObjectInfo(
        key=key, size=st.st_size, etag=etag, last_modified=datetime.fromtimestamp(st.st_mtime, tz=UTC)
    )


def _etag(f: BinaryIO, st: os.stat_result) -> str:
    etag = _remembered_etag(f.fileno(), st)
    if etag is None:
        etag = _md5_of(f)
        _remember_etag(f.fileno(), st, etag)
    return etag


def _stamp(st: os.stat_result) -> str:
    """The version a remembered ETag belongs to: the file's size and modification time."""
    return f"{st.st_size}:{st.st_mtime_ns}:"


def _remembered_etag(target: int | str, st: os.stat_result) -> str | None:
    """The ETag remembered for this version (``st``) of the file (a descriptor or a path), if any."""
    try:
        remembered = os.getxattr(target, _ETAG_XATTR).decode()
    except OSError:
        return None
    stamp = _stamp(st)
    return remembered[len(stamp) :] if remembered.startswith(stamp) else None


def _remember_etag(fd: int, st: os.stat_result, etag: str) -> None:
    try:
        os.setxattr(fd, _ETAG_XATTR, f"{_stamp(st)}{etag}".encode())
    except OSError:
        pass  # no user xattrs here (or a read-only file): hash again next time


def _current_etag(path: Path) -> str | None:
    # Hashed afresh, never from the remembered digest: the compare of a compare-and-swap must be exact.
    try:
        with open(path, "rb") as f:
            return _md5_of(f)
    except _MISSING:
        return None
    except OSError as exc:
        raise StoreError(f"Cannot read {path}: {exc}") from exc


def _md5_of(f: BinaryIO) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    while chunk := f.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _read_chunks(src: Path) -> Iterator[bytes]:
    with open(src, "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; some filesystems refuse fsync on a directory, which is harmless.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
