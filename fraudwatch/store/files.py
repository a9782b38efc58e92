"""Private files: what fraudwatch creates is not readable by other users, whatever the umask it was started with.

The store holds attackers' and customers' addresses, numbers and account names; the status file and the read
copy say as much. Most of these files are created by DuckDB and pyarrow, which take no mode argument, so the
process's umask is tightened instead (group may read, others get nothing: files 0640, folders 0750 at most), and
files left by an earlier, looser run are tightened when the store opens.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PRIVATE = 0o027  # the bits a created file or folder never has: group write, anything for others


def private_umask() -> None:
    """Add PRIVATE to the process's umask (keeping any stricter bits). The umask can only be read by setting it:
    the interim value is the strictest one, so that a file another thread creates meanwhile is never looser."""
    os.umask(os.umask(0o077) | PRIVATE)


def make_private(*paths: Path) -> None:
    """Take group write and every bit for others off `paths` that exist and are ours (left by a looser run)."""
    for path in paths:
        with contextlib.suppress(OSError):
            st = path.stat()
            if st.st_uid == os.geteuid() and st.st_mode & PRIVATE:
                path.chmod(stat.S_IMODE(st.st_mode) & ~PRIVATE)
