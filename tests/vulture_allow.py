"""Names `vulture` cannot see used (read by `make lint`, never imported): each with what uses it."""

from fraudwatch.cli.app import _Parser
from fraudwatch.notify.store import Silence
from fraudwatch.sim import labels
from fraudwatch.store.replica import Manifest
from tests.test_cli_tables import _utc_afterwards

Silence.created_by  # columns of a silence row, kept with it for whoever reads the row
Silence.created_at
Manifest.schema_version  # written into the read copy's manifest.json (its __dict__), for readers
labels.markdown_table  # renders data-samples/README.md's incident table (see that README)
_Parser._check_value  # argparse's hook for a value that is not one of the choices: 'did you mean'
_utc_afterwards  # an autouse pytest fixture: the display zone back to UTC after each test of its module
