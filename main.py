"""Train an audio-visual GZSL model (stage 1, or stage 2 with --retrain_all). See --help."""
import sys

from src.errors import exit_on_user_error


def main(argv=None):
    from src.args import finalize_main_args, get_main_parser

    parser = get_main_parser()
    args = parser.parse_args(argv)
    with exit_on_user_error(parser.prog):
        from src.compose import train
        train(finalize_main_args(args))


if __name__ == "__main__":
    sys.exit(main())
