"""Training end to end: stage 1 -> stage 2 -> get_evaluation, determinism, resume after a kill,
run-folder errors, and the CLIs' handling of bad input."""
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import AVCA_FLAGS, ROOT, main_args, run_cli

LINE = r"Seen performance=\d+\.\d\d, Unseen performance=\d+\.\d\d, GZSL performance=\d+\.\d\d, ZSL performance=\d+\.\d\d"


def metrics(run):
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("seconds"), r.pop("train_seconds")
    return rows


def same_state(a, b):
    sa, sb = torch.load(a, weights_only=False)["model"], torch.load(b, weights_only=False)["model"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def two_stage(tiny_root, tmp_path_factory):
    dump = tmp_path_factory.mktemp("runs")
    run_cli("main.py", *main_args(tiny_root, dump, "val", *AVCA_FLAGS, epochs=4, n_batches=20))
    run_cli("main.py", *main_args(tiny_root, dump, "all", *AVCA_FLAGS, "--retrain_all", "--save_checkpoints",
                                  epochs=4, n_batches=20))
    return dump


def test_stage1_stage2_evaluation_beats_chance(two_stage):
    import re
    runs = two_stage / "runs"
    proc = run_cli("get_evaluation.py", "--load_path_stage_A", runs / "val", "--load_path_stage_B", runs / "all",
                   "--dataset_name", "UCF", "--AVCA", cwd=two_stage)
    assert re.search(LINE, proc.stdout), proc.stdout
    result = json.loads((runs / "all" / "evaluation.json").read_text())
    # chance: 1/C recall (16 test classes here: HM ~ 0.06, ZSL 1/4); 4 epochs of 20 batches reach
    # HM 0.15-0.5 by seed (dropout masks decide), ZSL 0.7-0.8
    assert result["hm"] > 0.12 and result["zsl"] > 0.5, result
    assert result["epoch"] == torch.load(runs / "val" / "AVCA_score.pt", weights_only=False)["epoch"]
    assert len(result["per_class_recall"]) == 16 and result["mode"] == "both"
    assert (runs / "all" / "eval.log").read_text().count("GZSL performance=") == 1
    for f in ("args.pkl", "train.log", "AVCA_score.pt", "AVCA_loss.pt"):
        assert (runs / "val" / f).is_file()
    assert sorted(p.name for p in (runs / "all" / "checkpoints").glob("*_ckpt_*")) == \
        [f"AVCA_score_ckpt_{e}.pt" for e in range(4)]
    ckpt = torch.load(runs / "all" / "checkpoints" / "AVCA_score_ckpt_2.pt", weights_only=False)
    assert ckpt["epoch"] == 3 and ckpt["metric"] == "score" and {"model", "optimizer"} <= set(ckpt)
    assert list(runs.glob("val/events.out.tfevents.*"))


def test_same_seed_same_numbers(tiny_root, tmp_path):
    for exp in ("a", "b"):
        run_cli("main.py", *main_args(tiny_root, tmp_path, exp, *AVCA_FLAGS, epochs=2, n_batches=6))
    a, b = tmp_path / "runs" / "a", tmp_path / "runs" / "b"
    assert metrics(a) == metrics(b)
    assert same_state(a / "AVCA_score.pt", b / "AVCA_score.pt")
    run_cli("main.py", *main_args(tiny_root, tmp_path, "c", *AVCA_FLAGS, "--seed", "7", epochs=2, n_batches=6))
    assert metrics(tmp_path / "runs" / "c") != metrics(a)


def test_resume_after_kill_equals_uninterrupted_run(tiny_root, tmp_path):
    args = main_args(tiny_root, tmp_path, "r", *AVCA_FLAGS, "--save_checkpoints", epochs=5, n_batches=15)
    run_cli("main.py", *main_args(tiny_root, tmp_path, "u", *AVCA_FLAGS, "--save_checkpoints", epochs=5, n_batches=15))
    proc = subprocess.Popen([sys.executable, "main.py", *map(str, args)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
                                                            "PATH": "/usr/bin:/bin"})
    state = tmp_path / "runs" / "r" / "checkpoints" / "resume_state.pt"

    def finished_epochs():               # the resume state exists from the start (epoch 0)
        return torch.load(state, weights_only=False)["epoch"] if state.exists() else 0

    deadline = time.time() + 240
    while finished_epochs() < 1 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)                       # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = torch.load(state, weights_only=False)["epoch"]
    assert 1 <= done < 5, "the run must be killed before it finishes"
    run_cli("main.py", *args, "--resume")
    u, r = tmp_path / "runs" / "u", tmp_path / "runs" / "r"
    assert metrics(r) == metrics(u)
    for name in ["AVCA_score.pt", "AVCA_loss.pt"] + [f"checkpoints/AVCA_score_ckpt_{e}.pt" for e in range(5)]:
        assert same_state(u / name, r / name), name


def test_existing_run_folder_is_refused(two_stage, tiny_root):
    proc = run_cli("main.py", *main_args(tiny_root, two_stage, "val", *AVCA_FLAGS), check=False)
    assert proc.returncode == 2 and "already exists" in proc.stderr and "Traceback" not in proc.stderr


def check_error(proc, *needles):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    for n in needles:
        assert n in proc.stderr, proc.stderr


def test_get_evaluation_errors(two_stage, tmp_path):
    runs = two_stage / "runs"
    ev = lambda a, b: run_cli("get_evaluation.py", "--load_path_stage_A", a, "--load_path_stage_B", b, "--AVCA",
                              check=False, cwd=two_stage)
    # stage B not trained with --retrain_all
    check_error(ev(runs / "val", runs / "val"), "--retrain_all")
    # stage A without *_score.pt
    import shutil
    a2 = tmp_path / "a2"
    shutil.copytree(runs / "val", a2)
    (a2 / "AVCA_score.pt").unlink()
    check_error(ev(a2, runs / "all"), "AVCA_score.pt")
    # stage B without the checkpoint of the chosen epoch
    b2 = tmp_path / "b2"
    shutil.copytree(runs / "all", b2)
    epoch = torch.load(runs / "val" / "AVCA_score.pt", weights_only=False)["epoch"]
    (b2 / "checkpoints" / f"AVCA_score_ckpt_{epoch - 1}.pt").unlink()
    check_error(ev(runs / "val", b2), f"AVCA_score_ckpt_{epoch - 1}.pt", "--save_checkpoints")
    # data moved: a clear message, then --root_dir fixes it
    check_error(ev(runs / "val", tmp_path / "nope"), "does not exist")


def test_cli_bad_input_is_one_line(tiny_root, tmp_path):
    proc = run_cli("main.py", *main_args(tmp_path / "missing", tmp_path, "x", *AVCA_FLAGS), check=False)
    check_error(proc, "does not exist")
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli("main.py", *main_args(tiny_root, tmp_path, "x", *AVCA_FLAGS, "--input_size_video", "4096"),
                   check=False)
    check_error(proc, "--input_size_video is 4096")
    proc = run_cli("main.py", *main_args(tiny_root, tmp_path, "y", "--AVCA", "--ale"), check=False)
    check_error(proc, "choose one model")


def test_z_score_and_squared_distance_train_in_process(tiny_root, tmp_path):
    from src.args import finalize_main_args, get_main_parser
    from src.compose import train
    args = finalize_main_args(get_main_parser().parse_args(list(map(str, main_args(
        tiny_root, tmp_path, "z", "--z_score_inputs", "--distance_fn", "SquaredL2Loss", "--embedding_use_bn",
        "--embeddings_hidden_size", "64", epochs=2, n_batches=5)))))
    out = train(args)
    assert args.model_name == "avgzslnet" and 0.0 <= out["best_score"] <= 1.0
    assert (tmp_path / "runs" / "z" / "AVGZSLNet_score.pt").is_file()


def test_z_score_inputs_standardise_the_batch_not_the_class_matrix(tiny_root):
    from src.args import finalize_main_args, get_main_parser
    from src.data import dataset_from_args
    from src.models.base import pair_batch
    args = finalize_main_args(get_main_parser().parse_args(["--root_dir", str(tiny_root), "--dataset_name", "UCF"]))
    train = dataset_from_args(args).split("train")
    pos, neg = torch.arange(0, 20), torch.arange(20, 40)
    plain, z = pair_batch(train, pos, neg), pair_batch(train, pos, neg, z_score=True)
    assert torch.equal(z.class_text, plain.class_text) and torch.equal(z.label, plain.label)
    for name in ("audio", "video", "text", "audio_neg", "video_neg", "text_neg"):
        t = getattr(z, name)
        assert abs(float(t.mean())) < 1e-5 and abs(float(t.std()) - 1) < 1e-4, name


def test_trainer_is_built_from_explicit_objects_and_runs_an_epoch_in_process(tiny_root, tmp_path):
    """No command line: a split, a model, its optimiser, a run folder and a TrainConfig."""
    from src.data import AVGZSLDataset
    from src.models.avgzslnet import AVGZSLNet
    from src.runs import RunFolder
    from src.train import TrainConfig, Trainer
    dataset = AVGZSLDataset(tiny_root, "UCF")
    torch.manual_seed(0)
    model = AVGZSLNet(input_size_audio=512, input_size_video=512, embeddings_hidden_size=64, decoder_hidden_size=32,
                      embedding_dropout=0.1, decoder_dropout=0.1, embedding_use_bn=True, decoder_use_bn=True,
                      normalize_decoder_outputs=True)
    optimizer, scheduler = model.configure_optimizers(lr=1e-3, lr_scheduler=True)
    run = RunFolder(tmp_path / "runs" / "in_process")
    run.prepare(run.claim(resume=False, overwrite=False))
    trainer = Trainer(model=model, optimizer=optimizer, scheduler=scheduler, train=dataset.split("train"),
                      val=dataset.split("val"), run=run, class_name="AVGZSLNet",
                      config=TrainConfig(epochs=1, n_batches=4, bs=32, seed=0, save_checkpoints=True))
    out = trainer.fit()
    assert 0 <= out["best_score"] <= 1 and trainer.start_epoch == 1
    assert (run.path / "AVGZSLNet_score.pt").is_file() and run.epoch_ckpt("AVGZSLNet", 0).is_file()
    assert torch.load(run.resume_path, weights_only=False)["epoch"] == 1
    assert len((run.path / "metrics.jsonl").read_text().splitlines()) == 1


def test_run_all_and_cfg(tiny_root, tmp_path):
    """TCaF's one-command run (`--cfg FILE --run all`) works for any method: stage 1, stage 2 for the
    best epoch + 1 epochs, then the evaluation line; the command line wins over the YAML file."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("epochs: 3\nn_batches: 4\nbs: 32\nembedding_use_bn: true\nembeddings_hidden_size: 32\n"
                   "lr: 0.01\n")
    proc = run_cli("main.py", "--cfg", cfg, "--root_dir", tiny_root, "--dataset_name", "UCF", "--exp_name", "x",
                   "--dump_path", tmp_path, "--device", "cpu", "--run", "all", "--lr", "0.001")
    import re
    assert re.search(LINE, proc.stdout), proc.stdout
    runs = tmp_path / "runs"
    stage_1, stage_2 = runs / "x_stage_1", runs / "x_stage_2"
    best = torch.load(stage_1 / "AVGZSLNet_score.pt", weights_only=False)["epoch"]
    assert len(metrics(stage_1)) == 3 and len(metrics(stage_2)) == best
    assert sorted(p.name for p in (stage_2 / "checkpoints").glob("*_ckpt_*")) == \
        [f"AVGZSLNet_score_ckpt_{e}.pt" for e in range(best)]
    saved = torch.load(stage_1 / "checkpoints" / "resume_state.pt", weights_only=False)
    import pickle
    args = pickle.loads((stage_1 / "args.pkl").read_bytes())
    assert (args.lr, args.embeddings_hidden_size, args.embedding_use_bn, args.bs) == (0.001, 32, True, 32)
    assert saved["epoch"] == 3 and (stage_2 / "evaluation.json").is_file()
    cfg.write_text("epochs: 3\nnot_a_flag: 1\n")
    proc = run_cli("main.py", "--cfg", cfg, "--root_dir", tiny_root, check=False)
    assert proc.returncode == 2 and "not_a_flag" in proc.stderr and "Traceback" not in proc.stderr
