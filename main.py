"""Train an audio-visual GZSL model (stage 1, or stage 2 with --retrain_all). See --help."""
import sys

from src.errors import exit_on_user_error


def main(argv=None):
    from src.args import finalize_main_args, get_main_parser, parse_with_config

    with exit_on_user_error("main.py"):
        args, given = parse_with_config(get_main_parser, argv)
        from src.compose import run
        run(finalize_main_args(args, given))


if __name__ == "__main__":
    sys.exit(main())
