"""Streaming gzip CSV writer: header once, frames appended chunk by chunk, byte-identical for identical input.

Compression runs in a background thread (zlib releases the GIL), overlapping with the generation of the next chunk;
at most one chunk waits to be compressed, so memory stays bounded.
"""

from __future__ import annotations

import gzip
import io
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import polars as pl

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DATE_FORMAT = "%Y-%m-%d"


class CsvGzWriter:
    """Append Polars frames to ``path`` as one gzip member (mtime 0, no file name in the header)."""

    def __init__(self, path: Path, columns: tuple[str, ...], *, level: int = 6) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.columns = columns
        self.rows = 0
        self._raw = path.open("wb")
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=level)
        self._header = True
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending: Future[int] | None = None

    def write(self, frame: pl.DataFrame) -> None:
        if tuple(frame.columns) != self.columns:
            raise ValueError(f"{self.path.name}: columns {frame.columns} differ from {list(self.columns)}")
        if frame.height == 0 and not self._header:
            return
        buf = io.BytesIO()
        frame.write_csv(buf, include_header=self._header, datetime_format=DATETIME_FORMAT, date_format=DATE_FORMAT)
        self._wait()
        self._pending = self._pool.submit(self._gz.write, buf.getbuffer())
        self._header = False
        self.rows += frame.height

    def _wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def close(self) -> None:
        if self._header:  # an empty table still gets its header
            self.write(pl.DataFrame(schema={c: pl.String for c in self.columns}))
        try:
            self._wait()
            self._gz.close()
        finally:
            self.abort()

    def abort(self) -> None:
        """Stop without finishing the file (the caller removes it)."""
        self._pool.shutdown(wait=True)
        self._raw.close()

    def __enter__(self) -> CsvGzWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_table(frame: pl.DataFrame, path: Path, columns: tuple[str, ...]) -> int:
    """Write a whole (small) table; returns its row count."""
    with CsvGzWriter(path, columns) as writer:
        writer.write(frame.select(columns))
    return frame.height
