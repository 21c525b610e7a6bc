"""Every interruption leaves a resumable run folder, one training per folder (README "Interruptions").

Driven as a user runs it: real `main.py` processes on the tiny synthetic benchmark, signalled at
named moments. tests/pausing_main.py runs main.py held at a moment (it prints `test pause:
{moment}`); the test then sends the signal. After an interruption the run is
resumed with `--resume` and must reach exactly the numbers of an uninterrupted run: metrics.jsonl
(without its timings) and every checkpoint's weights, bit for bit.
"""
import errno
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from conftest import AVCA_FLAGS, ROOT, main_args, run_cli
from test_train import metrics

EPOCHS, N_BATCHES = 3, 6
CHECKPOINTS = ["AVCA_score.pt", "AVCA_loss.pt", "checkpoints/resume_state.pt"] + \
    [f"checkpoints/AVCA_score_ckpt_{e}.pt" for e in range(EPOCHS)]


def args_of(root, dump, exp, *extra):
    return main_args(root, dump, exp, *AVCA_FLAGS, "--save_checkpoints", *extra, epochs=EPOCHS, n_batches=N_BATCHES)


@pytest.fixture(scope="module")
def reference(tiny_root, tmp_path_factory):
    """The uninterrupted run every interrupted one must end up equal to."""
    dump = tmp_path_factory.mktemp("reference")
    run_cli("main.py", *args_of(tiny_root, dump, "u"))
    return dump / "runs" / "u"


def assert_same_run(reference, run):
    assert metrics(run) == metrics(reference)
    for name in CHECKPOINTS:
        a = torch.load(reference / name, weights_only=False)["model"]
        b = torch.load(run / name, weights_only=False)["model"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def logged(run):
    """The epochs' lines of metrics.jsonl ([] before the first one)."""
    return metrics(run) if (run / "metrics.jsonl").exists() else []


def temp_files(run):
    return sorted(run.glob(".*.tmp")) + sorted(run.glob("checkpoints/.*.tmp"))


def assert_clean(run):
    assert temp_files(run) == []
    assert not run.parent.joinpath(f"{run.name}.lock").exists()


def one_line(stderr, *needles):
    assert "Traceback" not in stderr, stderr
    lines = [l for l in stderr.splitlines() if l.startswith("main.py: ")]
    assert len(lines) == 1, stderr
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])
    return lines[0]


class Training:
    """main.py in a subprocess whose stdout is read line by line (for the test pauses)."""

    def __init__(self, args, pause=None):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        launcher = [str(ROOT / "tests" / "pausing_main.py"), pause] if pause else [str(ROOT / "main.py")]
        self.proc = subprocess.Popen([sys.executable, *launcher, *map(str, args)], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines, self.out = queue.Queue(), []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.out.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, marker, timeout=120):
        deadline = time.time() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.time()))
            except queue.Empty:
                self.proc.kill()
                raise AssertionError(f"no {marker!r} in {timeout}s: {''.join(self.out)}") from None
            if line is None:
                raise AssertionError(f"ended before {marker!r}: {''.join(self.out)}{self.proc.stderr.read()}")
            if marker in line:
                return

    def finish(self, timeout=120):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return rc, self.proc.stderr.read()


@pytest.mark.parametrize("sig,pause,kept", [(signal.SIGINT, "validated:1", 0), (signal.SIGTERM, "validated:2", 1),
                                             (signal.SIGTERM, "before_resume_state:1", 1)],
                         ids=["ctrl-c-in-first-epoch", "sigterm-in-second-epoch", "sigterm-after-first-epoch-logged"])
def test_signal_during_an_epoch_or_while_it_is_recorded(sig, pause, kept, reference, tiny_root, tmp_path):
    """validated:N: epoch N trained and validated, nothing of it recorded; the signal loses it and
    --resume trains it again. before_resume_state:N: epoch N's checkpoints and metrics line are on disk,
    its resume state not yet; the signal waits for it, so the folder keeps epoch N. Either way the
    message names the epoch of the resume state on disk, and --resume reaches the same numbers."""
    args = args_of(tiny_root, tmp_path, "r")
    run = tmp_path / "runs" / "r"
    epoch = int(pause.split(":")[1])
    training = Training(args, pause=pause)
    training.wait_for(f"test pause: {pause}")
    assert len(logged(run)) == epoch - pause.startswith("validated")
    assert torch.load(run / "checkpoints" / "resume_state.pt", weights_only=False)["epoch"] == epoch - 1
    training.proc.send_signal(sig)
    rc, err = training.finish()
    if sig == signal.SIGINT:
        assert rc == 130
        line = one_line(err, "main.py: interrupted: ", run)
    else:
        assert rc == 143
        line = one_line(err, "main.py: terminated (SIGTERM): ", run)
    assert ("no finished epoch" if kept == 0 else f"keeps epoch {kept} of {EPOCHS}; continue with --resume") in line
    assert torch.load(run / "checkpoints" / "resume_state.pt", weights_only=False)["epoch"] == kept
    assert len(logged(run)) == kept
    assert_clean(run)
    proc = run_cli("main.py", *args, "--resume")           # plain --resume: no --overwrite needed
    assert f"resumed {run} after epoch {kept}" in proc.stdout + proc.stderr
    assert_same_run(reference, run)
    assert_clean(run)


def test_sigterm_while_a_checkpoint_is_written(reference, tiny_root, tmp_path):
    """SIGTERM while the writer thread has a checkpoint's temp file open: it is finished (renamed),
    the queued files too, and nothing hidden is left."""
    args = args_of(tiny_root, tmp_path, "w")
    run = tmp_path / "runs" / "w"
    training = Training(args, pause="writing:AVCA_score_ckpt_0.pt")
    training.wait_for("test pause: writing:AVCA_score_ckpt_0.pt")
    assert [p.name.startswith(".AVCA_score_ckpt_0.pt.") for p in temp_files(run)] == [True]
    training.proc.send_signal(signal.SIGTERM)
    rc, err = training.finish()
    assert rc == 143
    line = one_line(err, "main.py: terminated (SIGTERM): ", run)
    assert re.search(rf"keeps epoch \d of {EPOCHS}; continue with --resume|is complete", line), line
    assert_clean(run)
    assert torch.load(run / "checkpoints" / "AVCA_score_ckpt_0.pt", weights_only=False)["epoch"] == 1
    run_cli("main.py", *args, "--resume")
    assert_same_run(reference, run)


def test_second_training_of_a_folder_is_refused(reference, tiny_root, tmp_path):
    """Two `--resume --overwrite` (the run scripts' flags) of one exp_name: the second is refused before
    it touches the folder; a killed holder leaves no stale lock."""
    args = args_of(tiny_root, tmp_path, "l", "--resume", "--overwrite")
    run = tmp_path / "runs" / "l"
    first = Training(args, pause="before_resume_state:1")
    first.wait_for("test pause: before_resume_state:1")
    second = run_cli("main.py", *args, check=False)
    assert second.returncode == 2
    one_line(second.stderr, "main.py: error: ", run, f"pid {first.proc.pid}", "another training")
    assert len(metrics(run)) == 1 and (run / "AVCA_score.pt").is_file()     # untouched by the second
    first.proc.send_signal(signal.SIGKILL)                # no clean-up at all: the OS drops the lock
    first.finish()
    run_cli("main.py", *args)
    assert_same_run(reference, run)
    assert_clean(run)


WRAPPER = """
import errno, runpy, sys, torch
main, target, kind = sys.argv.pop(1), sys.argv.pop(1), sys.argv.pop(1)
real_save = torch.save
def save(obj, f, *args, **kwargs):
    if target in str(getattr(f, "name", f)):
        f.write(b"x" * 4096)                  # a part of the file, then the disk is full
        if kind == "oserror":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")
    return real_save(obj, f, *args, **kwargs)
torch.save = save
sys.argv[0] = main
runpy.run_path(main, run_name="__main__")
"""


@pytest.mark.parametrize("kind", ["oserror", "torch"])
def test_full_disk_names_the_file_and_keeps_the_last_good_files(kind, reference, tiny_root, tmp_path):
    wrapper = tmp_path / "full_disk.py"
    wrapper.write_text(WRAPPER)
    args = args_of(tiny_root, tmp_path, "f")
    run = tmp_path / "runs" / "f"
    proc = run_cli(wrapper, ROOT / "main.py", "AVCA_score_ckpt_1.pt", kind, *args, check=False)
    assert proc.returncode == 2, proc.stderr
    target = run / "checkpoints" / "AVCA_score_ckpt_1.pt"
    line = one_line(proc.stderr, "main.py: error: ", f"cannot write {target}", f"{run} keeps epoch 1", "--resume")
    if kind == "oserror":
        assert "the disk is full" in line and "No space left on device" in line
    else:
        assert "is the disk full" in line
    assert_clean(run)
    assert not target.exists()
    assert torch.load(run / "checkpoints" / "AVCA_score_ckpt_0.pt", weights_only=False)["epoch"] == 1
    assert torch.load(run / "checkpoints" / "resume_state.pt", weights_only=False)["epoch"] == 1
    run_cli("main.py", *args, "--resume")             # space freed
    assert_same_run(reference, run)


def test_damaged_resume_state_is_named(reference, tiny_root, tmp_path):
    run = tmp_path / "runs" / "u"
    shutil.copytree(reference, run)
    state = run / "checkpoints" / "resume_state.pt"
    whole = state.read_bytes()
    for damaged in (whole[:len(whole) // 2], b"garbage\n"):
        state.write_bytes(damaged)
        proc = run_cli("main.py", *args_of(tiny_root, tmp_path, "u", "--resume"), check=False)
        assert proc.returncode == 2
        one_line(proc.stderr, "main.py: error: ", state, "--overwrite")
        assert state.read_bytes() == damaged and (run / "AVCA_score.pt").is_file()


def test_resume_with_other_model_flags_is_refused(reference, tiny_root, tmp_path):
    run = tmp_path / "runs" / "u"
    shutil.copytree(reference, run)
    # AVCA_FLAGS has --embeddings_hidden_size 64; a later value of a repeated flag wins
    proc = run_cli("main.py", *args_of(tiny_root, tmp_path, "u", "--resume", "--embeddings_hidden_size", "32",
                                       "--n_batches", "7"), check=False)
    assert proc.returncode == 2
    one_line(proc.stderr, "--resume with --embeddings_hidden_size 32 and with --n_batches 7",
             f"but {run} was trained with --embeddings_hidden_size 64 and with --n_batches {N_BATCHES}", "--overwrite")
    assert metrics(run) == metrics(reference)


def test_flags_that_may_change_on_resume(tiny_root, tmp_path):
    from src.args import finalize_main_args, get_main_parser, upgrade_run_args
    from src.runs import resume_differences

    def parse(*extra):
        return finalize_main_args(get_main_parser().parse_args(list(map(str, args_of(tiny_root, tmp_path, "x", *extra)))))

    saved = parse()
    assert resume_differences(parse("--epochs", "9", "--resume", "--overwrite", "--device", "cuda", "--verbose",
                                     "--root_dir", tmp_path / "moved", "--dump_path", tmp_path / "elsewhere",
                                     "--debug_comment", "ignored flag"), saved) == []
    names = lambda *extra: [d[0] for d in resume_differences(parse(*extra), upgrade_run_args(saved))]
    assert names("--seed", "1") == ["seed"]
    assert names("--lr", "0.01", "--bs", "32") == ["bs", "lr"]
    assert names("--momentum", "0.5") == ["momentum"]
    # a flag missing from an older args.pkl counts as its default (the upgrade at loading fills it)
    del saved.z_score_inputs
    assert names() == [] and names("--z_score_inputs") == ["z_score_inputs"]


def test_background_writer_keeps_a_prefix_of_its_writes(tmp_path):
    from src.io_utils import BackgroundWriter
    started, gate, done = threading.Event(), threading.Event(), []
    files = BackgroundWriter()
    files.submit(lambda: (started.set(), gate.wait(10), done.append(1)))
    files.submit(done.append, 2)
    assert started.wait(10)
    files.discard_pending()            # the write in progress is finished, the queued ones dropped
    gate.set()
    files.flush()
    assert done == [1]
    files = BackgroundWriter()
    files.submit(lambda: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device", "a.pt")))
    files.submit(done.append, 3)       # after a failed write nothing else is written
    with pytest.raises(OSError):
        files.flush()
    assert done == [1]


def test_atomic_write_on_a_full_disk_names_the_target(tmp_path, monkeypatch):
    from src import io_utils
    target = tmp_path / "a.pt"
    target.write_bytes(b"the last good file")

    def full(obj, f, *args, **kwargs):
        f.write(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError) as err:
        io_utils.atomic_torch_save({"x": 1}, target)
    assert (err.value.errno, err.value.filename) == (errno.ENOSPC, str(target))
    assert target.read_bytes() == b"the last good file" and list(tmp_path.glob(".*.tmp")) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_torch_save_to_a_file_reports_enospc():
    """The premise of io_utils.atomic_torch_save: through a Python file, a full device is ENOSPC."""
    with pytest.raises(OSError) as err:
        with open("/dev/full", "wb") as f:
            torch.save({"x": torch.zeros(100000)}, f)
    assert err.value.errno == errno.ENOSPC
