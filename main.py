"""Train an audio-visual GZSL model (stage 1, or stage 2 with --retrain_all). See --help."""
import sys

from src.errors import exit_on_user_error


def main(argv=None):
    from src.args import config_defaults, finalize_main_args, get_main_parser

    parser = get_main_parser()
    with exit_on_user_error(parser.prog):
        config_defaults(parser, sys.argv[1:] if argv is None else argv)
        args = parser.parse_args(argv)
        from src.compose import run
        run(finalize_main_args(args))


if __name__ == "__main__":
    sys.exit(main())
