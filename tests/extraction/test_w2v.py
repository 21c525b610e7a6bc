"""Word vectors from a tiny word2vec file and a tiny fastText .bin made here."""
import numpy as np
import pytest

from src.errors import UserError
from w2v_features.make_word_vectors import main, read_names


def names_csv(tmp_path):
    p = tmp_path / "names.csv"
    p.write_text("original,manual\nApplyEyeMakeup,Apply Eye Makeup\nArchery,Archery\nYoYo,Yo Yo\n")
    return p


def test_word2vec_word_average(tmp_path, capsys):
    vecs = {"Apply": [1, 0, 0, 0], "Eye": [0, 2, 0, 0], "Makeup": [0, 0, 3, 0], "Archery": [0, 0, 0, 5],
            "Yo": [1, 1, 1, 1]}
    model = tmp_path / "tiny.txt"
    model.write_text(f"{len(vecs)} 4\n" + "".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vecs.items()))
    out = tmp_path / "w.npy"
    main(["--format", "word2vec", "--text", "--model", str(model), "--names", str(names_csv(tmp_path)),
          "--output", str(out)])
    d = np.load(out, allow_pickle=True).item()
    assert list(d) == ["Apply Eye Makeup", "Archery", "Yo Yo"]
    want = np.array([1, 2, 3, 0]) / 3
    assert np.allclose(d["Apply Eye Makeup"], want / np.linalg.norm(want))
    assert d["Archery"].dtype == np.float32 and np.allclose(d["Archery"], [0, 0, 0, 1])
    (tmp_path / "more.csv").write_text("original,manual\nX,Apply Lipstick\n")
    main(["--format", "word2vec", "--text", "--model", str(model), "--names",
          str(tmp_path / "more.csv"), "--output", str(out)])
    assert "'Apply Lipstick': not in the model: Lipstick" in capsys.readouterr().err
    (tmp_path / "none.csv").write_text("original,manual\nX,Zumba\n")
    with pytest.raises(UserError, match="no word of 'Zumba'"):
        main(["--format", "word2vec", "--text", "--model", str(model), "--names",
              str(tmp_path / "none.csv"), "--output", str(out)])


def test_fasttext_whole_name_as_one_token(tmp_path):
    from gensim.models import FastText
    from gensim.models.fasttext import load_facebook_vectors, save_facebook_model
    corpus = [["apply", "eye", "makeup", "archery", "yo"] * 3] * 20
    ft = FastText(vector_size=8, min_count=1, epochs=2, seed=0, workers=1, min_n=3, max_n=4)
    ft.build_vocab(corpus)
    ft.train(corpus, total_examples=len(corpus), epochs=2)
    path = tmp_path / "tiny.bin"
    save_facebook_model(ft, str(path))
    out = tmp_path / "w.npy"
    main(["--model", str(path), "--names", str(names_csv(tmp_path)), "--output", str(out)])
    d = np.load(out, allow_pickle=True).item()
    kv = load_facebook_vectors(str(path))
    for name in ("Apply Eye Makeup", "Yo Yo"):   # the whole string, spaces included
        want = kv[name] / np.linalg.norm(kv[name])
        assert np.allclose(d[name], want, atol=1e-6) and abs(np.linalg.norm(d[name]) - 1) < 1e-6
    assert not np.allclose(d["Yo Yo"], d["Archery"])


def test_names_and_errors(tmp_path):
    (tmp_path / "c.txt").write_text("A b\n\nC\nA b\n")
    assert read_names(tmp_path / "c.txt") == ["A b", "C"]
    with pytest.raises(UserError, match="wiki.en.bin"):
        main(["--model", str(tmp_path / "none.bin"), "--names", str(tmp_path / "c.txt"),
              "--output", str(tmp_path / "o.npy")])
