"""The pipe between `ingest --detect` and its scoring process: messages sent from a thread of the ingest's own
(`Outbox`), and a chunk's rows framed as they are — an Arrow IPC stream whose size the message before it gives,
written whole and read straight into a buffer of that size.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from multiprocessing.connection import Connection
from typing import Any

import pyarrow as pa


class Outbox:
    """Sends to the scoring process from a thread of its own, in order. A chunk's rows cross the pipe only as
    fast as the scoring process reads them: time the ingest spent waiting, and now spends reading its next chunk
    (figures: benchmarks/RESULTS.md, "Rows sent to the scoring process from a thread"). At most two messages
    wait; then `put` does."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.queue: queue.Queue[tuple[Any, bool] | None] = queue.Queue(2)
        self.error: OSError | EOFError | None = None
        self.thread = threading.Thread(target=self._run, name="fraudwatch-detect-outbox", daemon=True)
        self.thread.start()

    def put(self, message: Any, raw: bool = False) -> None:
        """Queue `message` (bytes-like when `raw`); raises what an earlier send raised."""
        if self.error is not None:
            raise self.error
        self.queue.put((message, raw))

    def flush(self) -> None:
        """Wait until everything queued was sent; raises what a send raised."""
        self.queue.join()
        if self.error is not None:
            raise self.error

    def stop(self, process: Any) -> None:
        """End the thread before the pipe is closed: a descriptor closed under a write could be reused by the
        next file opened, and the write land there. A send under way ends when the scoring process reads it or
        is gone; if it does neither in 5 s, it is ended."""
        with contextlib.suppress(queue.Full):
            self.queue.put(None, timeout=5)
        self.thread.join(timeout=5)
        if self.thread.is_alive() and process is not None:
            process.kill()
            with contextlib.suppress(queue.Full):
                self.queue.put(None, timeout=5)
            self.thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                if self.error is None:  # after a failed send, the rest is dropped
                    message, raw = item
                    if raw:
                        write_all(self.conn.fileno(), message)
                    else:
                        self.conn.send(message)
            except (OSError, EOFError) as exc:
                self.error = exc
            finally:
                self.queue.task_done()



def write_all(fd: int, data: memoryview) -> None:
    """Write `data` whole to the pipe: a chunk's rows follow the message that gives their size, as they are
    (`send_bytes` would frame them for `recv_bytes`, which reads through a growing buffer: below)."""
    while data:
        data = data[os.write(fd, data):]


def read_exactly(fd: int, size: int) -> bytearray:
    """`size` bytes from the pipe, read straight into a buffer of that size, which the rows made from them keep.
    `recv_bytes` appends reads to a growing buffer and copies it out: more page faults and more CPU (figures:
    benchmarks/RESULTS.md, "Pipe reads into a buffer of their size")."""
    buf = bytearray(size)
    view, got = memoryview(buf), 0
    while got < size:
        n = os.readv(fd, [view[got:]])
        if not n:
            raise EOFError("the pipe closed within a message")
        got += n
    return buf


def ipc_stream(table: pa.Table) -> pa.Buffer:
    """`table` as an Arrow IPC stream, to send through a pipe. Measured first and written once into a buffer of
    that size: a growing output stream copied a flood chunk's rows over and over (figures: benchmarks/RESULTS.md,
    "Arrow IPC streams written into a presized buffer")."""
    size = pa.MockOutputStream()
    with pa.ipc.new_stream(size, table.schema) as writer:
        writer.write_table(table)
    buffer = pa.allocate_buffer(size.size())
    with pa.ipc.new_stream(pa.FixedSizeBufferWriter(buffer), table.schema) as writer:
        writer.write_table(table)
    return buffer

