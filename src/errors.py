"""One exception type for bad user input, turned into a one-line message by the CLIs."""
import sys
from contextlib import contextmanager


class UserError(Exception):
    """Bad input the user can fix: the message names the file or value and the fix."""


@contextmanager
def exit_on_user_error(prog: str):
    """Print a `UserError` as `prog: error: ...` and exit with status 2 (no traceback)."""
    try:
        yield
    except UserError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
