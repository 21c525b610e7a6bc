"""main.py held at a named moment of its training, for the interruption tests.

    python tests/pausing_main.py MOMENT [main.py arguments...]

runs main.py as a user does, with the trainer patched (in this process only) to print
`test pause: MOMENT` at that moment and wait there until a signal arrives (at most 60 s), so that
the test can send SIGINT or SIGTERM at exactly that point. The moments:

- `validated:N`: epoch N trained and validated, nothing of it recorded (the earlier epochs' files
  on disk); a signal here loses epoch N;
- `before_resume_state:N`: epoch N's checkpoints and metrics line on disk, its resume state not
  yet queued (inside the block where a first signal is held);
- `writing:NAME`: the writer thread, before the rename of the first write of the file NAME.
"""
import runpy
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src import io_utils  # noqa: E402
from src.train import Trainer  # noqa: E402

MOMENT = sys.argv[1]
KIND, _, WHERE = MOMENT.partition(":")
trainer = []          # the trainer of this process, once fit() has started


def pause() -> None:
    print(f"test pause: {MOMENT}", flush=True)
    stop = trainer[0].stop if trainer else None
    if stop is not None:
        stop.received.wait(60)          # a signal raises in the main thread, and wakes a writer thread
    else:
        time.sleep(60)


fit, train_and_validate, save_resume_state = Trainer.fit, Trainer.train_and_validate, Trainer.save_resume_state


def patched_fit(self):
    trainer.append(self)
    return fit(self)


def patched_train_and_validate(self, epoch):
    outcome = train_and_validate(self, epoch)
    if KIND == "validated" and epoch + 1 == int(WHERE):
        self.files.flush()
        pause()
    return outcome


def patched_save_resume_state(self):
    if KIND == "before_resume_state" and self.start_epoch == int(WHERE):
        self.files.flush()
        pause()
    return save_resume_state(self)


def hold_write(tmp, path):
    if path.name == WHERE:
        io_utils.before_rename = None
        pause()


Trainer.fit, Trainer.train_and_validate = patched_fit, patched_train_and_validate
Trainer.save_resume_state = patched_save_resume_state
if KIND == "writing":
    io_utils.before_rename = hold_write

sys.argv = [str(ROOT / "main.py"), *sys.argv[2:]]
runpy.run_path(str(ROOT / "main.py"), run_name="__main__")
