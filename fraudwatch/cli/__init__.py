"""The command line: `main(argv)` for tests and scripts, `program()` for the installed `fraudwatch` command.

fraudwatch.cli.app parses and dispatches; fraudwatch.cli.registry lists the commands; each command group is one
module here (ingest, formats, store, detect, alerts, notify, watch, bans, simulate) that parses its arguments,
calls its stage and prints. Command modules import only fraudwatch.cli.output, .context, .exit and the stages,
never each other. Whatever they print of the data goes through fraudwatch.cli.output (terminal-safe: see
fraudwatch.cli.terminal).
"""

from fraudwatch.cli.app import main, program

__all__ = ["main", "program"]
