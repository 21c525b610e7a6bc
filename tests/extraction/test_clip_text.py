"""ClipClap's class text embeddings (docs/clipclap.md 2): the templates as the reference lists them,
UCF's class-name rule and csv, the per-prompt normalise / mean / renormalise against a hand
computation with a fake encoder, the .npy dict format, and the CLI on random networks."""
import csv
import json
import re

import numpy as np
import pytest

from clip_feature_extraction import get_clip_embeddings
from clip_feature_extraction.templates import BY_KEY, templates
from clip_feature_extraction.text_embeddings import (class_embeddings, embedding_file, load_embeddings,
                                                     read_class_names, save_embeddings, ucf_clip_class_name,
                                                     write_ucf_clip_class_names)
from src.errors import UserError

from .conftest import REPO

REFERENCE = REPO.parent / "shared" / "reference" / "clipclap_prompt_templates.json"


def test_templates_match_the_reference():
    if not REFERENCE.is_file():
        pytest.skip("../shared/reference is not available")
    reference = json.loads(REFERENCE.read_text())
    assert set(reference) == set(BY_KEY)
    for key, listed in reference.items():
        assert list(BY_KEY[key]) == listed, key


def test_template_choice_and_counts():
    assert [len(templates(d, m)) for d in ("ucf", "activitynet", "vggsound") for m in ("clip", "wavcaps")] == \
        [48, 30, 48, 30, 8, 9]
    assert templates("activity", "clip") is templates("ucf", "clip")
    assert templates("vggsound", "wavcaps")[0] == "a {} can be heard."
    assert all(t.count("{}") == 1 for ts in BY_KEY.values() for t in ts)
    with pytest.raises(ValueError):
        templates("ucf", "bert")


def test_ucf_class_names(tmp_path):
    assert [ucf_clip_class_name(n) for n in ("ApplyEyeMakeup", "YoYo", "HandstandPushups", "HandstandWalking",
                                             "Basketball")] == \
        ["Apply Eye Makeup", "Yo Yo", "Hand Stand Pushups", "Handstand Walking", "Basketball"]
    listed = tmp_path / "all_class.txt"
    listed.write_text("ApplyEyeMakeup\nHandstandPushups\n\nApplyEyeMakeup\nYoYo\n")
    out = write_ucf_clip_class_names(listed, tmp_path / "ucf_clip_class_names.csv")
    with open(out, newline="") as f:
        assert list(csv.reader(f)) == [["original", "manual", "clip_class_name"],
                                       ["ApplyEyeMakeup", "", "Apply Eye Makeup"],
                                       ["HandstandPushups", "", "Hand Stand Pushups"], ["YoYo", "", "Yo Yo"]]
    assert read_class_names(out, "ucf") == ["Apply Eye Makeup", "Hand Stand Pushups", "Yo Yo"]
    w2v = tmp_path / "ucf_w2v_class_names.csv"
    w2v.write_text("original,manual\nApplyEyeMakeup,apply eye makeup\nYoYo,yoyo\n")
    out = write_ucf_clip_class_names(w2v, tmp_path / "from_w2v.csv")
    with open(out, newline="") as f:
        assert list(csv.DictReader(f))[1] == {"original": "YoYo", "manual": "yoyo", "clip_class_name": "Yo Yo"}
    # ActivityNet / VGGSound: the manual column; a missing column names the file and the fix
    assert read_class_names(w2v, "activitynet") == ["apply eye makeup", "yoyo"]
    with pytest.raises(UserError, match="clip_class_name.*--make_ucf_class_names"):
        read_class_names(w2v, "ucf")
    with pytest.raises(UserError, match="not found"):
        read_class_names(tmp_path / "absent.csv", "vggsound")


def fake_encoder(calls):
    """prompt -> a fixed non-unit vector [6] (its letters' codes, scaled by the prompt length)."""
    def encode(prompts):
        calls.append(len(prompts))
        rows = [np.resize(np.frombuffer(p.encode(), np.uint8).astype(np.float32), 6) * len(p) - 300
                for p in prompts]
        return np.stack(rows)
    return encode


def test_class_embeddings_by_hand():
    names = ["Apply Eye Makeup", "Yo Yo", "Archery"]
    temps = ["a photo of a person {}.", "a video of {}.", "{} can be heard."]
    calls = []
    got = class_embeddings(names, temps, fake_encoder(calls), batch_size=6, progress=False)
    assert list(got) == names and calls == [6, 3]                  # whole classes, about 6 prompts a call
    reference = fake_encoder([])
    for name in names:
        rows = reference([t.format(name) for t in temps]).astype(np.float64)
        rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)     # each prompt
        mean = rows.mean(axis=0)
        want = mean / np.linalg.norm(mean)
        assert got[name].dtype == np.float32 and got[name].shape == (6,)
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-6)
    one_by_one = class_embeddings(names, temps, fake_encoder(calls := []), batch_size=1, progress=False)
    assert calls == [3, 3, 3] and all(np.allclose(one_by_one[n], got[n], atol=1e-7) for n in names)


def test_npy_dict_format(tmp_path):
    vectors = {"b": np.ones(4, np.float32) / 2, "a": np.array([1, 0, 0, 0], np.float32)}
    path = save_embeddings(vectors, tmp_path / embedding_file("activity", "wavcaps"))
    assert path.name == "wavcaps_word_embeddings_activitynet_normed.npy"
    assert embedding_file("ucf101", "clip") == "word_embeddings_ucf_normed.npy"
    loaded = np.load(path, allow_pickle=True).item()
    assert isinstance(loaded, dict) and list(loaded) == ["b", "a"]
    assert all(np.array_equal(loaded[k], v) and loaded[k].dtype == np.float32 for k, v in vectors.items())
    assert load_embeddings(path).keys() == vectors.keys()
    assert not list(tmp_path.glob(".*.tmp"))


def toy_vocab(path, names):
    words = {w for ts in BY_KEY.values() for t in ts for w in re.findall(r"[a-z]+", t)}
    words |= {w for n in names for w in re.findall(r"[a-z]+", n.lower())}
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."] + sorted(words)) + "\n")
    return path


def test_cli_makes_ucf_class_names(tmp_path):
    (tmp_path / "all_class.txt").write_text("ApplyEyeMakeup\nYoYo\nHandstandPushups\n")
    names_csv = tmp_path / "class-split" / "ucf_clip_class_names.csv"
    written = get_clip_embeddings.main(["--dataset", "ucf101", "--make_ucf_class_names",
                                        str(tmp_path / "all_class.txt"), "--class_names", str(names_csv)])
    assert written == [names_csv] and read_class_names(names_csv, "ucf") == \
        ["Apply Eye Makeup", "Yo Yo", "Hand Stand Pushups"]
    with pytest.raises(UserError, match="for UCF"):
        get_clip_embeddings.main(["--dataset", "vggsound", "--class_names", str(names_csv),
                                  "--make_ucf_class_names", str(tmp_path / "all_class.txt")])


def test_cli_random_networks(tmp_path):
    """VGGSound (8 CLIP and 9 WavCaps templates: the shortest run) on the random networks."""
    names = ["dog barking", "playing cello"]
    names_csv = tmp_path / "vggsound_w2v_class_names.csv"
    names_csv.write_text("original,manual\n" + "".join(f"{n.title()},{n}\n" for n in names))
    vocab = toy_vocab(tmp_path / "vocab.txt", names)
    written = get_clip_embeddings.main([
        "--dataset", "vggsound", "--class_names", str(names_csv), "--output_dir", str(tmp_path / "text"),
        "--random_init", "--bert_vocab", str(vocab), "--device", "cpu", "--no_progress"])
    assert [p.name for p in written] == ["word_embeddings_vggsound_normed.npy",
                                         "wavcaps_word_embeddings_vggsound_normed.npy"]
    for path, width in zip(written, (512, 1024)):
        vectors = load_embeddings(path)
        assert list(vectors) == names
        for v in vectors.values():
            assert v.dtype == np.float32 and v.shape == (width,)
            assert np.linalg.norm(v) == pytest.approx(1, abs=1e-5)
        assert not np.allclose(vectors[names[0]], vectors[names[1]])
    with pytest.raises(UserError, match="--bert_vocab"):
        get_clip_embeddings.main(["--dataset", "vggsound", "--class_names", str(names_csv), "--output_dir",
                                  str(tmp_path / "x"), "--random_init", "--models", "wavcaps"])
