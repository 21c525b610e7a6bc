"""TCaF and ClipClap, nothing left behind (issue 19).

- Families: asking a method for a feature family it does not run on (TCaF: main_temporal and
  cls_temporal; ClipClap: clip; the averaged methods: main, cls, clip) is one line and exit 2 in
  `python -m src.recipes` and the run scripts, also when some of the families asked apply;
  `python -m src.reproduce` skips such cells of its grid with a logged line, and refuses a method or
  a family named on its command line that would have no cell at all.
- Interruptions of TCaF's (`--new_model_sequence`) and ClipClap's (`--clipclap`) trainings, as
  tests/test_interruptions.py checks them for AVCA: real `main.py` processes with the run scripts'
  flags (made tiny) on the tiny benchmark, signalled at named moments (tests/pausing_main.py), each
  message naming the epoch the folder keeps, a second training of the folder refused, and the run
  resumed to exactly the numbers of an uninterrupted one. Also the signal hold of src/train.py in-process.
"""
import logging
import os
import signal
import subprocess
import sys
from contextlib import contextmanager

import pytest
import torch

from conftest import ROOT, run_cli
from src import recipes, reproduce
from src.recipes import cell_commands
from src.signals import StopSignals, TrainingInterrupted, stop_signals
from src.runs import RunFolder
from test_interruptions import Training, assert_clean, logged, one_line
from test_train import metrics

# -- families a method does not run on -----------------------------------------------------------

def refused(capsys, main, argv):
    """The one stderr line of a command-line refusal (exit 2, nothing on stdout)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and out == "" and len(err.splitlines()) == 1, (out, err)
    return err.strip()


def test_recipes_refuse_a_family_the_method_does_not_run_on(capsys):
    assert refused(capsys, recipes.main, ["UCF", "tcaf", "--families", "main"]) == \
        "python -m src.recipes: error: tcaf does not run on main (its families: main_temporal, cls_temporal)"
    # some apply, some not: refused too (a silent partial grid is what this prevents)
    assert refused(capsys, recipes.main, ["UCF", "clipclap", "--families", "main", "clip", "cls"]) == \
        "python -m src.recipes: error: clipclap does not run on main, cls (its families: clip)"
    assert refused(capsys, recipes.main, ["UCF", "avca", "--families", "cls", "main_temporal"]) == \
        "python -m src.recipes: error: avca does not run on main_temporal (its families: main, cls, clip)"
    for method, families in (("tcaf", ["cls_temporal"]), ("avca", ["clip", "main"]), ("clipclap", ["clip"])):
        assert recipes.main(["UCF", method, "--families", *families]) == 0
        runs = [line.split("--exp_name ")[1].split()[0] for line in capsys.readouterr().out.splitlines()
                if "--exp_name" in line]
        assert runs == [name for f in families for name in recipes.exp_names(method, "UCF", f)], runs
    with pytest.raises(recipes.UserError, match="^tcaf does not run on cls "):
        cell_commands("tcaf", "UCF", "cls", "D")


def test_run_script_stops_on_a_family_the_method_does_not_run_on():
    env = {**os.environ, "AVGZSL_DRY_RUN": "1", "AVGZSL_FAMILIES": "main_temporal main", "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "run_scripts" / "UCF-GZSL" / "tcaf.sh")], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout + proc.stderr
    assert proc.stderr.strip() == \
        "python -m src.recipes: error: tcaf does not run on main (its families: main_temporal, cls_temporal)"


@contextmanager
def reproduce_log():
    logger, lines = logging.getLogger("avgzsl.reproduce"), []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_reproduce_skips_missing_cells_and_refuses_empty_rows_and_columns(tmp_path, capsys):
    out = ["--datasets", "UCF", "--out_dir", str(tmp_path / "out"), "--dry_run"]
    assert refused(capsys, reproduce.main, ["--methods", "tcaf", "--families", "main", *out]) == \
        ("python -m src.reproduce: error: tcaf does not run on main (its families: main_temporal, cls_temporal): no "
         "cell in this grid; add its families to --families or drop it from --methods")
    assert "tcaf does not run on main, cls " in refused(capsys, reproduce.main, ["--methods", "tcaf", "avca", *out])
    assert refused(capsys, reproduce.main, ["--methods", "avca", "--families", "main", "main_temporal", *out]) == \
        ("python -m src.reproduce: error: none of --methods avca runs on main_temporal (tcaf does): no cell in this "
         "grid; add such a method to --methods or drop it from --families")
    with reproduce_log() as lines:
        assert reproduce.main(["--methods", "avca", "tcaf", "--families", "main", "main_temporal", *out]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["skipped: avca does not run on main_temporal (its families: main, cls, clip)",
                         "skipped: tcaf does not run on main (its families: main_temporal, cls_temporal)"]
    assert [line.split("--exp_name ")[1].split()[0] for line in printed if "--exp_name" in line] == \
        ["attention_ucf_val_main", "attention_ucf_all_main", "tcaf_ucf_val_main_temporal", "tcaf_ucf_all_main_temporal"]
    with reproduce_log() as lines:             # --methods left at its default: the others' rows, one line
        assert reproduce.main(out) == 0
    none = [name for name, m in recipes.METHODS.items() if not {"main", "cls"} & set(m.families)]
    assert none[:2] == ["tcaf", "clipclap"] and f"skipped: {', '.join(none)} (no cell on main, cls)" in lines
    assert not [line for line in capsys.readouterr().out.splitlines() if "_temporal " in line or "ClipClap" in line]


# -- interruptions of TCaF's and ClipClap's epochs ------------------------------------------------

EPOCHS = 3
# the run scripts' commands (recipes), made small: (family, main.py flags, the model's class name)
SUCCESSORS = {
    "tcaf": ("cls_temporal", ["--embeddings_hidden_size", "32", "--transformer_depth", "1", "--transformer_heads", "2",
                              "--transformer_dim_head", "16", "--decoder_hidden_size", "32", "--bs", "16",
                              "--n_batches", "3"], "Multimodal_Sequence_Transformer"),
    "clipclap": ("clip", ["--decoder_hidden_size", "64", "--bs", "32", "--n_batches", "3", "--lr", "0.001"],
                 "ClipClap_model"),
}


def args_of(method, tiny_root, dump, exp, *extra):
    family, small, _ = SUCCESSORS[method]
    base = cell_commands(method, "UCF", family, tiny_root.parent)[0][1:]
    return [*base[:base.index("--exp_name")], *small, "--epochs", EPOCHS, "--save_checkpoints", "--device", "cpu",
            "--dump_path", dump, "--exp_name", exp, *extra]


def checkpoints(method):
    cls = SUCCESSORS[method][2]
    return [f"{cls}_score.pt", f"{cls}_loss.pt", "checkpoints/resume_state.pt",
            *(f"checkpoints/{cls}_score_ckpt_{e}.pt" for e in range(EPOCHS))]


@pytest.fixture(scope="module", params=list(SUCCESSORS))
def reference(request, tiny_root, tmp_path_factory):
    """(method, the uninterrupted run folder every interrupted one must end up equal to)."""
    dump = tmp_path_factory.mktemp(f"reference_{request.param}")
    run_cli("main.py", *args_of(request.param, tiny_root, dump, "u"))
    return request.param, dump / "runs" / "u"


def assert_same_run(method, reference, run):
    assert metrics(run) == metrics(reference) and len(metrics(run)) == EPOCHS
    for name in checkpoints(method):
        a = torch.load(reference / name, weights_only=False)
        b = torch.load(run / name, weights_only=False)
        assert a["epoch"] == b["epoch"], name
        assert a["model"].keys() == b["model"].keys() and all(torch.equal(a["model"][k], b["model"][k])
                                                              for k in a["model"]), name


def resume_epoch(run):
    return torch.load(run / "checkpoints" / "resume_state.pt", weights_only=False)["epoch"]


def stop(training, signum, prefix, run, kept):
    """Signal a paused training: it exits with the signal's status and one line saying the folder keeps
    epoch `kept`, which its resume state and metrics hold, and no temp file is left."""
    training.proc.send_signal(signum)
    rc, err = training.finish()
    assert rc == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum]
    one_line(err, prefix, f"{run} keeps epoch {kept} of {EPOCHS}; continue with --resume")
    assert resume_epoch(run) == kept and len(logged(run)) == kept
    assert_clean(run)


def test_signals_during_and_after_epochs_then_resume(reference, tiny_root, tmp_path):
    """Ctrl-C in epoch 2 (trained and validated, nothing recorded): the folder keeps epoch 1. Then
    --resume, SIGTERM once epoch 2 is logged (its checkpoints on disk, not its resume state): the epoch
    is recorded before the exit, the folder keeps epoch 2, and a second training of the folder (the run
    scripts' --resume --overwrite) is refused meanwhile. A last --resume ends with the numbers of the
    uninterrupted run."""
    method, ref = reference
    args = args_of(method, tiny_root, tmp_path, "r")
    run = tmp_path / "runs" / "r"

    training = Training(args, pause="validated:2")
    training.wait_for("test pause: validated:2")
    assert len(logged(run)) == 1 and resume_epoch(run) == 1
    stop(training, signal.SIGINT, "main.py: interrupted: ", run, kept=1)

    training = Training([*args, "--resume"], pause="before_resume_state:2")
    training.wait_for("test pause: before_resume_state:2")
    assert len(logged(run)) == 2 and resume_epoch(run) == 1
    assert (run / "checkpoints" / f"{SUCCESSORS[method][2]}_score_ckpt_1.pt").is_file()
    second = run_cli("main.py", *args, "--resume", "--overwrite", check=False)
    assert second.returncode == 2
    one_line(second.stderr, "main.py: error: ", run, f"pid {training.proc.pid}", "another training")
    stop(training, signal.SIGTERM, "main.py: terminated (SIGTERM): ", run, kept=2)

    proc = run_cli("main.py", *args, "--resume")
    assert f"resumed {run} after epoch 2" in proc.stdout + proc.stderr
    assert_same_run(method, ref, run)
    assert_clean(run)


def test_sigterm_after_the_last_epoch_is_logged(reference, tiny_root, tmp_path):
    """SIGTERM once the last epoch is logged: it is recorded, the folder is complete, and --resume has
    nothing left to train."""
    method, ref = reference
    args = args_of(method, tiny_root, tmp_path, "z")
    run = tmp_path / "runs" / "z"
    training = Training(args, pause=f"before_resume_state:{EPOCHS}")
    training.wait_for(f"test pause: before_resume_state:{EPOCHS}")
    training.proc.send_signal(signal.SIGTERM)
    rc, err = training.finish()
    assert rc == 143
    one_line(err, "main.py: terminated (SIGTERM): ", f"{run} is complete ({EPOCHS} epochs)")
    assert resume_epoch(run) == EPOCHS
    assert_same_run(method, ref, run)
    assert_clean(run)


# -- the hold, in-process ------------------------------------------------------------------------

def signal_self(signum=signal.SIGTERM):
    os.kill(os.getpid(), signum)
    for _ in range(1000):          # the Python handler runs between two bytecodes of the main thread
        pass


def test_a_signal_while_an_epoch_is_recorded_waits_for_the_record():
    done = []
    with stop_signals() as stop:
        assert isinstance(stop, StopSignals)
        with pytest.raises(TrainingInterrupted) as err:
            with stop.held():
                signal_self()
                done.append("recorded")
        assert done == ["recorded"] and err.value.signum == signal.SIGTERM and err.value.exit_code == 143
    done.clear()
    with stop_signals() as stop:                  # a second signal stops at once, inside the block
        with pytest.raises(TrainingInterrupted):
            with stop.held():
                signal_self()
                signal_self(signal.SIGINT)
                done.append("recorded")
        assert done == [] and stop.signum == signal.SIGTERM
    with stop_signals() as stop:                  # outside the block, and without a signal: as before
        with stop.held():
            done.append("quiet")
        with pytest.raises(TrainingInterrupted):
            signal_self()
            done.append("not reached")
    assert done == ["quiet"]


def test_the_message_names_what_the_folder_holds():
    def kept(saved, resuming=False):
        return RunFolder("runs/x").kept(saved, 5, resuming)
    assert kept(None) == kept(0) == "runs/x holds no finished epoch yet; --resume starts it again"
    # a resumed run stopped before its resume state was read (saved_epoch unknown): nothing was changed
    assert kept(None, resuming=True) == "runs/x is as it was; continue with --resume"
    assert kept(3, resuming=True) == "runs/x keeps epoch 3 of 5; continue with --resume"
    assert kept(5) == "runs/x is complete (5 epochs)"
