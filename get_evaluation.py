"""The reported numbers of a stage-1 + stage-2 pair of run folders. See --help."""
import sys

from src.errors import exit_on_user_error


def main(argv=None):
    import logging
    import time
    from pathlib import Path

    from src.args import get_eval_parser
    from src.evaluate import format_line
    from src.io_utils import atomic_write_json
    from src.runtime import setup_logging
    from src.two_stage import evaluate_runs

    parser = get_eval_parser()
    args = parser.parse_args(argv)
    setup_logging()
    with exit_on_user_error(parser.prog):
        result = evaluate_runs(args)
        line = format_line(result)
        print(line)
        out = Path(args.load_path_stage_B) / f"{args.eval_name}.json"
        atomic_write_json(result, out)
        with open(Path(args.load_path_stage_B) / "eval.log", "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {args.load_path_stage_A} beta*={result['beta']:.4f} "
                    f"epoch={result['epoch']} {line}\n")
        logging.getLogger("avgzsl").info("wrote %s", out)
        if args.plots:
            from src.plots import save_evaluation_plots
            for path in save_evaluation_plots(args, result):
                logging.getLogger("avgzsl").info("wrote %s", path)


if __name__ == "__main__":
    sys.exit(main())
