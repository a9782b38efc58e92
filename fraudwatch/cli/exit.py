"""The exit statuses of the `fraudwatch` command, as README documents them.

The errors a stage raises carry their own status (`FraudwatchError.exit_code` and its subclasses in
`fraudwatch.errors` and `fraudwatch.enforce`), since the layers below the CLI may not import it; their values
are these (tests/test_cli_package.py checks that they agree).
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    OK = 0
    FAILED = 1  # a file failed (the others were still read), or nothing to remove
    USAGE = 2  # the command line or the configuration
    STORE = 3
    INPUT = 4
    FIREWALL = 5
    REFUSED = 6  # a ban on a trusted or allowlisted address
    INTERNAL = 70  # a bug: one line, the traceback with FRAUDWATCH_DEBUG=1
    INTERRUPTED = 130  # Ctrl-C
