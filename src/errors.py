"""The command-line boundary: every failure a user can cause becomes one line, a bug keeps its traceback.

- `UserError`: bad input the user can fix; its message names the file or value and the fix.
- `exit_on_user_error(prog)`: the one place that turns the known classes of failure into
  `prog: error: ...` (exit 2): a UserError; an OS error about a path (missing, not a folder,
  permission denied, read-only, disk full), named with its path. Ctrl-C and SIGTERM become
  `prog: interrupted` or the interruption's own message (exit 130, or its `exit_code`).
  Anything else is a bug and keeps its traceback.
- `ArgumentParser`: argparse, with a bad flag value reported on one line (not the whole usage).
- `command_line_fields`: which of a parser's fields the command line itself set.
"""
import argparse
import errno
import sys
from contextlib import contextmanager

# OS errors that say something about the user's paths or machine, not about the code
USER_ERRNOS = {errno.ENOENT: "no such file or folder", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied", errno.EROFS: "read-only file system",
               errno.ENOSPC: "no space left on the device (the disk is full)",
               errno.EDQUOT: "disk quota exceeded", errno.EISDIR: "is a folder, expected a file",
               errno.ENOTDIR: "a part of the path is a file, expected a folder",
               errno.EEXIST: "already exists", errno.ENAMETOOLONG: "the name is too long"}


class UserError(Exception):
    """Bad input the user can fix: the message names the file or value and the fix."""


def os_error_line(err: OSError) -> str:
    """'what: path' of an OS error (the path, or both paths of a rename)."""
    what = USER_ERRNOS.get(err.errno, err.strerror or str(err))
    paths = [p for p in (err.filename, err.filename2) if p is not None]
    return f"{what}: {' -> '.join(map(str, paths))}" if paths else what


@contextmanager
def exit_on_user_error(prog: str):
    """Print a known failure as `prog: error: ...` and exit with status 2 (no traceback)."""
    try:
        yield
    except UserError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        if err.errno not in USER_ERRNOS:
            raise                      # not about the user's paths: a bug, with its traceback
        print(f"{prog}: error: {os_error_line(err)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as err:
        print(f"{prog}: {str(err) or 'interrupted'}", file=sys.stderr)
        sys.exit(getattr(err, "exit_code", 130))


class ArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser whose errors are one line: `prog: error: ... (see prog --help)`."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def command_line_fields(make_parser, argv) -> frozenset:
    """The fields the command line itself sets (neither defaults nor a config file), for a parser
    that `make_parser()` builds; call it after the real parse has accepted `argv`."""
    parser = make_parser()
    for action in parser._actions:
        action.default, action.required = argparse.SUPPRESS, False
    return frozenset(vars(parser.parse_known_args(list(map(str, argv)))[0]))
