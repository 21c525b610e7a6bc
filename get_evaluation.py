"""The reported numbers of a stage-1 + stage-2 pair of run folders. See --help."""
import sys

from src.errors import exit_on_user_error


def main(argv=None):
    import logging

    from src.args import config_defaults, get_eval_parser
    from src.runtime import setup_logging
    from src.two_stage import evaluate_runs, report

    parser = get_eval_parser()
    with exit_on_user_error(parser.prog):
        config_defaults(parser, sys.argv[1:] if argv is None else argv)
        args = parser.parse_args(argv)
        setup_logging()
        result = evaluate_runs(args)
        report(args, result)
        if args.plots:
            from src.plots import save_evaluation_plots
            for path in save_evaluation_plots(args, result):
                logging.getLogger("avgzsl").info("wrote %s", path)


if __name__ == "__main__":
    sys.exit(main())
