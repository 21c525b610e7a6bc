"""src/plots.py and get_evaluation.py --plots: valid PNGs, and t-SNE skipped for models without
`eval_embeddings`."""

import matplotlib.image
import torch

from conftest import AVCA_FLAGS, cli, main_args
from src.plots import beta_curve, tsne_plot

PNG = b"\x89PNG\r\n\x1a\n"


def valid_png(path):
    assert path.is_file() and path.read_bytes()[:8] == PNG
    img = matplotlib.image.imread(str(path))
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    return img


def test_pictures_from_tensors(tmp_path):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat_interleave(5)
    seen = torch.tensor([True, True, False, False])
    dist = torch.rand(20, 4, generator=g)
    valid_png(beta_curve(dist, labels, seen, 0.4, tmp_path / "beta.png", "title"))
    classes = torch.randn(4, 8, generator=g)
    samples = classes[labels] + 0.1 * torch.randn(20, 8, generator=g)
    valid_png(tsne_plot(samples, labels, classes, seen, tmp_path / "tsne.png", ["a", "b", "c", "d"], "t"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beta.png", "tsne.png"]     # no temp files left


def two_stages(root, dump, *flags):
    main = cli("main")
    main([str(a) for a in main_args(root, dump, "val", *flags, epochs=1, n_batches=2, bs=32)])
    main([str(a) for a in main_args(root, dump, "all", *flags, "--retrain_all", "--save_checkpoints",
                                    epochs=1, n_batches=2, bs=32)])
    return dump / "runs"


def test_get_evaluation_plots(tiny_root, tmp_path, capsys):
    runs = two_stages(tiny_root, tmp_path, *AVCA_FLAGS)
    cli("get_evaluation")(["--load_path_stage_A", str(runs / "val"), "--load_path_stage_B", str(runs / "all"),
                           "--plots", "--eval_name", "ev"])
    out = capsys.readouterr().out
    assert "GZSL performance=" in out and "ev_tsne.png" in out
    valid_png(runs / "all" / "ev_beta.png")
    valid_png(runs / "all" / "ev_tsne.png")
    assert (runs / "all" / "ev.json").is_file()


def test_no_tsne_without_embeddings(tiny_root, tmp_path, capsys, monkeypatch):
    from src.models.base import GZSLModel
    from src.models.bilinear import DeviseModel
    # a model that does not expose its embeddings (the interface's default)
    monkeypatch.setattr(DeviseModel, "eval_embeddings", GZSLModel.eval_embeddings)
    runs = two_stages(tiny_root, tmp_path, "--devise")
    cli("get_evaluation")(["--load_path_stage_A", str(runs / "val"), "--load_path_stage_B", str(runs / "all"),
                           "--plots"])
    assert "no t-SNE picture" in capsys.readouterr().out
    valid_png(runs / "all" / "evaluation_beta.png")
    assert not (runs / "all" / "evaluation_tsne.png").exists()


def test_the_beta_picture_spans_the_models_own_grid(tmp_path, monkeypatch):
    """ClipClap searches beta on 0..5 (76 points): its picture covers that span, and beta* on it."""
    import src.plots as plots
    from src.evaluate import beta_grid

    figures = []
    monkeypatch.setattr(plots, "save_png", lambda fig, path: figures.append(fig) or path)
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat_interleave(5)
    dist = torch.rand(20, 4, generator=g)
    grid = beta_grid(0.0, 5.0, 76)
    plots.beta_curve(dist, labels, torch.tensor([True, True, False, False]), 4.6, tmp_path / "b.png", "", grid)
    ax = figures[0].axes[0]
    assert ax.get_xlim() == (0.0, 5.0)
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(dots) == 3 and all(len(line.get_xdata()) == 76 for line in dots)
    assert any(line.get_xdata()[0] == 4.6 for line in ax.lines if line.get_linestyle() == "--")      # beta*
    plots.plt.close("all")
