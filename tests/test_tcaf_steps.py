"""TCaF's step without a host read per batch: the epoch reads every batch's padded lengths in one
transfer and builds the batches with them (on the CPU bit-identical to reading each batch's
longest sequence, a hash over 15 steps); under --cuda_graph one captured graph per padded length
(CUDA only, skipped without it)."""
import copy
import hashlib

import pytest
import torch

from src.models.tcaf import TEMPORAL_BATCHES
from src.sampler import PairSampler
from src.sequences import Sequences
from src.steps import GRAPHS, WARMUP, Steps, epoch_lengths, run_steps, shape_key, train_epoch
from test_tcaf import epoch_inputs, random_split, small

STEPS, BS = 15, 8
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def splits(device="cpu"):
    g = torch.Generator().manual_seed(5)
    labels = torch.arange(40) % 4
    train = random_split(torch.randint(1, 12, (40,), generator=g).tolist(),
                         torch.randint(1, 16, (40,), generator=g).tolist(), labels, seed=1)
    val = random_split([4] * 8, [5] * 8, torch.arange(8) % 4, seed=2, name="val", unseen=(3,))
    return train.to(device), val.to(device)


def digest(model, opt, stats) -> str:
    """sha256 of the weights, the buffers (BatchNorm statistics), Adam's state and the epoch's means."""
    h = hashlib.sha256(repr(sorted(stats.items())).encode())
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    for state in opt.state_dict()["state"].values():
        for k in sorted(state):
            h.update(torch.as_tensor(state[k]).cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def as_before(inp):
    """The epoch as it was: each batch built alone, `max` mode reading its longest sequence from the device."""
    inp.model.train()
    pos, neg = (t.view(inp.n_batches, inp.bs) for t in inp.sampler.draw(inp.n_batches * inp.bs))
    return run_steps(inp, lambda s: TEMPORAL_BATCHES.train(inp.model, inp.train, pos[s], neg[s], z_score=False,
                                                           generator=inp.sampler.generator))


def fifteen_steps(epoch, mode):
    train, val = splits()
    model = small(seqlen_train=mode, seqlen_train_maxlen=6)
    opt, _ = model.configure_optimizers(lr=1e-3, lr_scheduler=False)
    sampler = PairSampler(train.labels, 4, seed=3)
    torch.manual_seed(11)                    # the dropout draws
    stats = epoch(epoch_inputs(model, opt, train, val, sampler, n_batches=STEPS, bs=BS))
    return digest(model, opt, stats) + sampler.generator.get_state().numpy().tobytes().hex()[-32:]


@pytest.mark.parametrize("mode", ["max", "fixed"])
def test_the_epoch_with_known_lengths_is_bit_identical_to_reading_each_batchs(mode, monkeypatch):
    before = fifteen_steps(as_before, mode)
    lengths_given = []
    gather = Sequences.gather

    def gather_noting(self, idx=None, length=None, starts=None):
        lengths_given.append(length)
        return gather(self, idx, length, starts)
    monkeypatch.setattr(Sequences, "gather", gather_noting)
    assert fifteen_steps(train_epoch, mode) == before
    # every training batch was padded to a length known beforehand (the extra pass reuses the batch)
    assert len(lengths_given) == 2 * STEPS and None not in lengths_given


def test_the_lengths_are_each_batchs_longest_sequences_read_at_once():
    train, _ = splits()
    model = small(seqlen_train="max")
    pos = PairSampler(train.labels, 4, seed=3).draw(STEPS * BS)[0].view(STEPS, BS)
    lengths = epoch_lengths(TEMPORAL_BATCHES, model, train, pos)
    assert lengths == [(int(train.audio.lengths[p].max()), int(train.video.lengths[p].max())) for p in pos]
    assert len(set(lengths)) > 3                  # the batches have several padded lengths
    batch = TEMPORAL_BATCHES.train(model, train, pos[0], pos[0], lengths=lengths[0])
    assert batch.audio.shape[1] == lengths[0][0] and batch.video.shape[1] == lengths[0][1]
    assert epoch_lengths(TEMPORAL_BATCHES, small(seqlen_train="fixed"), train, pos) == [None] * STEPS


# -- --cuda_graph (CUDA only) ------------------------------------------------------------------------

def no_dropout(**kw):
    return small(embedding_dropout=0.0, decoder_dropout=0.0, additional_dropout=0.0, transformer_dropout=0.0,
                 embedding_token_dropout=0.0, **kw).cuda()


def graphs_expected(keys, warmup=WARMUP, capacity=GRAPHS):
    """The shapes GraphedStep captures for batches of shapes `keys`, in order (its docstring's rule)."""
    graphs, warm = [], set()
    for i, key in enumerate(keys, 1):
        if key in graphs or len(graphs) >= capacity:
            continue
        if i <= warmup or key not in warm:
            warm.add(key)
        else:
            graphs.append(key)
    return graphs


def padded(key) -> tuple:
    """(T_a, T_v) of a batch's shape key."""
    shapes = {name: shape for name, shape, _ in key}
    return shapes["audio"][1], shapes["video"][1]


@cuda
def test_the_graphed_temporal_epoch_matches_eager_with_one_graph_per_padded_length():
    train, val = splits("cuda")
    eager = no_dropout(seqlen_train="max")
    graphed = copy.deepcopy(eager)
    results = {}
    for name, model in (("eager", eager), ("graphed", graphed)):
        opt, _ = model.configure_optimizers(lr=1e-3, lr_scheduler=False)
        steps = Steps(model, cuda_graph=name == "graphed", device_type="cuda")
        sampler = PairSampler(train.labels, 4, seed=3)
        inp = epoch_inputs(model, opt, train, val, sampler, n_batches=3 * STEPS, bs=BS)
        inp.steps = steps
        stats = [train_epoch(inp) for _ in range(2)]
        results[name] = (stats, steps)
    for a, b in zip(results["eager"][0], results["graphed"][0]):
        assert a.keys() == b.keys() and all(b[k] == pytest.approx(a[k], rel=1e-3, abs=1e-4) for k in a)
    for (k, p), q in zip(eager.state_dict().items(), graphed.state_dict().values()):
        assert torch.allclose(p.float(), q.float(), rtol=1e-3, atol=1e-4), k
    # the graph cache: one graph per padded length, as its rule says, for the epochs' batches
    sampler = PairSampler(train.labels, 4, seed=3)
    keys = []
    for _ in range(2):
        pos, neg = (t.view(3 * STEPS, BS) for t in sampler.draw(3 * STEPS * BS))
        for i, lengths in enumerate(epoch_lengths(TEMPORAL_BATCHES, graphed, train, pos)):
            keys.append(shape_key(TEMPORAL_BATCHES.train(graphed, train, pos[i], neg[i], generator=sampler.generator,
                                                         lengths=lengths)))
    cache = results["graphed"][1].made["train"].graph.graphs
    assert list(cache) == graphs_expected(keys) and len(cache) >= 2
    assert len({padded(key) for key in cache}) == len(cache)


@cuda
def test_graph_replays_ask_nothing_of_the_host_and_a_full_cache_runs_eagerly():
    train, _ = splits("cuda")
    model = no_dropout(seqlen_train="max")
    opt, _ = model.configure_optimizers(lr=1e-3, lr_scheduler=False)
    step = Steps(model, cuda_graph=True, device_type="cuda")("train", model.training_step, opt)
    step.graph.capacity = 2
    sampler = PairSampler(train.labels, 4, seed=3)
    pos = sampler.draw(STEPS * BS)[0].view(STEPS, BS)
    lengths = epoch_lengths(TEMPORAL_BATCHES, model, train, pos)
    by_length = {}
    for i, n in enumerate(lengths):
        by_length.setdefault(n, i)
    a, b, c = list(by_length.values())[:3]

    def batch(i):
        return TEMPORAL_BATCHES.train(model, train, pos[i], pos[i], lengths=lengths[i])
    for i in [a] * (WARMUP + 1) + [b, b]:
        step(batch(i))
    assert len(step.graph.graphs) == 2
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i in (a, b, a):                       # built and replayed without a host sync
            loss, _ = step(batch(i))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(loss)
    step(batch(c))
    step(batch(c))
    assert len(step.graph.graphs) == 2 and shape_key(batch(c)) not in step.graph.graphs
