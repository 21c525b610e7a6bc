"""The reported numbers of a stage-1 + stage-2 pair of run folders. See --help."""
import sys

from src.errors import exit_on_user_error


def main(argv=None):
    import logging

    from src.args import get_eval_parser, parse_with_config, requested_model
    from src.runtime import setup_logging
    from src.two_stage import evaluate_pair, report

    with exit_on_user_error("get_evaluation.py"):
        args, given = parse_with_config(get_eval_parser, argv)
        args.model_name = requested_model(args, given)      # None: the run's own model
        setup_logging()
        evaluation = evaluate_pair(args)
        report(args, evaluation.result)
        if args.plots:
            from src.plots import save_evaluation_plots
            for path in save_evaluation_plots(args, evaluation):
                logging.getLogger("avgzsl").info("wrote %s", path)


if __name__ == "__main__":
    sys.exit(main())
