"""Tests of lesson 06, Level 3: our LSTM / GRU / RNN modules against torch.nn's, and the tasks.

- from_torch(nn.LSTM / nn.GRU / nn.RNN) gives the same outputs, final states and gradients
  (input, h0/c0, every parameter) for 1-3 layers, one or two directions, batch_first or
  not, padded and packed ragged batches, in float64 (1e-10) and float32 (1e-5)
- padded input with ``lengths=`` == the same batch packed; unbatched (T, D) input
- to_torch(our module) == the module; a paper-form GRU refuses with a ValueError; the paper
  GRU == torch's where the two forms must agree (reset gate open)
- parameter counts and names equal torch's; state_dict round trip; seeded determinism;
  inter-layer dropout acts in training only; one batch is overfitted
- bad input raises clear errors; the level's purity rule
- train_sentiment.py and rnn_paper.SentimentLSTM: tokeniser, vocabulary from the training
  split only, truncation, synthetic labels re-derived from the text, ours == nn.LSTM inside
  the classifier, missing IMDB
- train_char_lm.py, rnn_paper.CharLM and sample: streams, a uniform model's loss is log V,
  sampling checks
- the adding-problem script learns (quick default)

Run: .venv/bin/python -m pytest 06_LSTM_GRU/paper -q
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from utils import import_lesson
from utils.testing import FLOAT64, assert_close, assert_level_purity, tolerance

rp = import_lesson("06_LSTM_GRU.paper.rnn_paper")  # the modules and the models built on them
convert = import_lesson("06_LSTM_GRU.paper.convert")  # from_torch, to_torch
train = import_lesson("06_LSTM_GRU.paper.train")  # the adding problem and its pictures
sentiment = import_lesson("06_LSTM_GRU.paper.train_sentiment")
char_lm = import_lesson("06_LSTM_GRU.paper.train_char_lm")

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread

TORCH = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
CONFIGS = [  # (num_layers, bidirectional, batch_first)
    (1, False, False), (2, True, True), (3, True, False), (2, False, True)]


@pytest.fixture(autouse=True, scope="module")
def _no_tf32():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _states(cell, L, N, H, dtype, device, g):
    mk = lambda: torch.randn(L, N, H, generator=g, dtype=torch.float64).to(device, dtype)  # noqa: E731
    return (mk(), mk()) if cell == "lstm" else mk()


def _leafs(hx):
    if isinstance(hx, tuple):
        return tuple(h.detach().clone().requires_grad_() for h in hx)
    return hx.detach().clone().requires_grad_()


def _flat(hx):
    return hx if isinstance(hx, tuple) else (hx,)


def _compare(ours_mod, ref_mod, x, hx, lengths, packed, tol, batch_first, what):
    """Run both modules on the same (packed or padded) input; compare outputs and grads."""
    results = []
    for mod in (ours_mod, ref_mod):
        xi = x.detach().clone().requires_grad_()
        hi = _leafs(hx)
        inp = (pack_padded_sequence(xi, lengths, batch_first=batch_first, enforce_sorted=False)
               if packed else xi)
        out, h_n = mod(inp, hi)
        if packed:
            assert isinstance(out, nn.utils.rnn.PackedSequence)
            out_data = out.data
        else:
            out_data = out
        g = torch.Generator().manual_seed(9)
        w = torch.randn(out_data.shape, generator=g, dtype=torch.float64).to(x)
        loss = (out_data * w).sum() + sum((h ** 2).sum() for h in _flat(h_n))
        loss.backward()
        results.append((out, _flat(h_n), xi.grad, [h.grad for h in _flat(hi)],
                        {n: p.grad for n, p in mod.named_parameters()}))
    (o1, h1, dx1, dh1, dp1), (o2, h2, dx2, dh2, dp2) = results
    if packed:
        assert torch.equal(o1.batch_sizes, o2.batch_sizes)
        assert torch.equal(o1.sorted_indices, o2.sorted_indices)
        o1, o2 = o1.data, o2.data
    assert_close(o1, o2, tol, f"{what}: output")
    for a, b in zip(h1, h2):
        assert_close(a, b, tol, f"{what}: final state")
    assert_close(dx1, dx2, tol, f"{what}: d input")
    for a, b in zip(dh1, dh2):
        assert_close(a, b, tol, f"{what}: d initial state")
    assert dp1.keys() == dp2.keys()
    for name in dp1:
        assert_close(dp1[name], dp2[name], tol, f"{what}: d {name}")


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "full"])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"L{c[0]}-bi{int(c[1])}-bf{int(c[2])}")
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_outputs_and_gradients_equal_torch(cell, config, packed, device):
    num_layers, bidirectional, batch_first = config
    dtype = torch.float64
    torch.manual_seed(0)
    ref = TORCH[cell](3, 4, num_layers=num_layers, bidirectional=bidirectional,
                      batch_first=batch_first).to(device, dtype)
    ours = convert.from_torch(ref)
    N, T = 4, 6
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, T, 3, generator=g, dtype=dtype).to(device)
    if not batch_first:
        x = x.transpose(0, 1).contiguous()
    hx = _states(cell, num_layers * (2 if bidirectional else 1), N, 4, dtype, device, g)
    lengths = torch.tensor([6, 2, 5, 3]) if packed else None  # unsorted, ragged
    _compare(ours, ref, x, hx, lengths, packed, tolerance(dtype, device), batch_first,
             f"{cell} {config} packed={packed}")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_float32_equals_torch(cell, device):
    torch.manual_seed(0)
    ref = TORCH[cell](5, 8, num_layers=2, bidirectional=True, batch_first=True).to(device)
    ours = convert.from_torch(ref)
    x = torch.randn(3, 9, 5, device=device)
    hx = _states(cell, 4, 3, 8, torch.float32, device, torch.Generator().manual_seed(2))
    _compare(ours, ref, x, hx, torch.tensor([9, 4, 7]), True, tolerance(torch.float32, device),
             True, f"{cell} float32")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_padded_with_lengths_equals_packed(cell):
    torch.manual_seed(0)
    ours = convert.from_torch(TORCH[cell](3, 4, num_layers=2, bidirectional=True,
                                          batch_first=True).double())
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    lengths = torch.tensor([3, 7, 1, 5])
    out_p, h_p = ours(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    out_l, h_l = ours(x, lengths=lengths)
    padded, _ = pad_packed_sequence(out_p, batch_first=True, total_length=7)
    tol = tolerance(torch.float64)
    assert_close(out_l, padded, tol, "padded output (zeros past each length)")
    for a, b in zip(_flat(h_l), _flat(h_p)):
        assert_close(a, b, tol, "final states")
    # the backward direction of sequence 0 starts at ITS last element (t = 2), so its output
    # at t = 2 is one step of the reverse cell from a zero state, whatever follows in padding
    x2 = x.clone()
    x2[0, 3:] = 100.0  # garbage in the padding must change nothing
    assert_close(ours(x2, lengths=lengths)[0], out_l, tol, "padding is ignored")


def test_unbatched_input_equals_torch():
    torch.manual_seed(0)
    ref = nn.LSTM(3, 4, num_layers=2).double()
    ours = convert.from_torch(ref)
    x = torch.randn(5, 3, dtype=torch.float64)
    (o1, (_, c1)), (o2, (_, c2)) = ours(x), ref(x)
    tol = tolerance(torch.float64)
    assert_close(o1, o2, tol, "output")
    assert_close(c1, c2, tol, "c_n")


def test_to_torch_round_trip_and_paper_gru_refuses():
    torch.manual_seed(0)
    for ours in (rp.LSTM(3, 4, num_layers=2, bidirectional=True),
                 rp.GRU(3, 4, reset_after=True, batch_first=True),
                 rp.RNN(3, 4, nonlinearity="relu")):
        ref = convert.to_torch(ours)
        x = torch.randn(5, 2, 3) if not ours.batch_first else torch.randn(2, 5, 3)
        assert_close(ours(x)[0], ref(x)[0], tolerance(torch.float32), f"{type(ours).__name__}")
    with pytest.raises(ValueError, match="reset_after=True"):
        convert.to_torch(rp.GRU(3, 4))
    with pytest.raises(TypeError, match="nn.LSTM, nn.GRU or nn.RNN"):
        convert.from_torch(nn.Linear(3, 4))
    with pytest.raises(ValueError, match="proj_size"):
        convert.from_torch(nn.LSTM(3, 4, proj_size=2))


def test_paper_gru_equals_torch_only_with_the_reset_gate_open():
    torch.manual_seed(0)
    ref = nn.GRU(3, 4).double()
    paper = rp.GRU(3, 4).double()
    paper.load_state_dict(ref.state_dict())
    x, h0 = torch.randn(6, 2, 3, dtype=torch.float64), torch.randn(1, 2, 4, dtype=torch.float64)
    assert (paper(x, h0)[0] - ref(x, h0)[0]).abs().max() > 1e-3  # different maps in general
    with torch.no_grad():
        for m in (ref, paper):
            m.bias_ih_l0[:4] = 60.0  # r = sigmoid(60 + ...) = 1 in float64
    assert_close(paper(x, h0)[0], ref(x, h0)[0], tolerance(torch.float64), "r = 1")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_parameter_names_shapes_and_count_equal_torch(cell):
    kw = dict(num_layers=3, bidirectional=True, bias=True)
    ref, ours = TORCH[cell](7, 5, **kw), rp.CELLS[cell](7, 5, **kw)
    assert {n: tuple(p.shape) for n, p in ours.named_parameters()} == \
        {n: tuple(p.shape) for n, p in ref.named_parameters()}
    G = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    # per layer and direction: G*H*(D + H + 2); D = 7 for layer 0, 2H = 10 above
    expected = 2 * G * 5 * ((7 + 5 + 2) + 2 * (10 + 5 + 2))
    assert sum(p.numel() for p in ours.parameters()) == expected
    no_bias = rp.CELLS[cell](7, 5, bias=False)
    assert sum(p.numel() for p in no_bias.parameters()) == \
        sum(p.numel() for p in TORCH[cell](7, 5, bias=False).parameters())


def test_state_dict_round_trip_and_determinism():
    torch.manual_seed(3)
    a = rp.LSTM(3, 4, num_layers=2)
    torch.manual_seed(3)
    b = rp.LSTM(3, 4, num_layers=2)
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), n  # the same seed gives the same weights
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    c = rp.LSTM(3, 4, num_layers=2)
    c.load_state_dict(torch.load(buf))
    x = torch.randn(5, 2, 3)
    assert torch.equal(a(x)[0], c(x)[0])


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(0)
    m = rp.LSTM(3, 4, num_layers=2, dropout=0.5)
    x = torch.randn(5, 2, 3)
    plain = rp.LSTM(3, 4, num_layers=2)
    plain.load_state_dict(m.state_dict())
    m.eval()
    assert torch.equal(m(x)[0], plain(x)[0])  # eval: no dropout
    m.train()
    assert not torch.equal(m(x)[0], plain(x)[0])  # training: the layer-0 output is dropped
    one = rp.LSTM(3, 4, num_layers=1, dropout=0.5)  # one layer: nothing to drop between
    plain1 = rp.LSTM(3, 4)
    plain1.load_state_dict(one.state_dict())
    assert torch.equal(one(x)[0], plain1(x)[0])


def test_overfits_one_batch():
    torch.manual_seed(0)
    lstm, head = rp.LSTM(3, 16, batch_first=True), nn.Linear(16, 2)
    x, y = torch.randn(8, 6, 3), torch.tensor([0, 1] * 4)
    opt = torch.optim.Adam([*lstm.parameters(), *head.parameters()], lr=2e-2)
    for _ in range(60):
        loss = nn.functional.cross_entropy(head(lstm(x)[0][:, -1]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.05


def test_bad_input_raises_clear_errors():
    m = rp.LSTM(3, 4, batch_first=True)
    with pytest.raises(ValueError, match=r"3-D \(N, T, D\)"):
        m(torch.randn(2, 3, 4, 3))
    with pytest.raises(ValueError, match="input_size=3"):
        m(torch.randn(2, 5, 2))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T\] = \[1, 5\]"):
        m(torch.randn(2, 5, 3), lengths=torch.tensor([6, 2]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(N,\)"):
        m(torch.randn(2, 5, 3), lengths=torch.tensor([5]))
    with pytest.raises(TypeError, match="lengths must be integers"):
        m(torch.randn(2, 5, 3), lengths=torch.tensor([5.0, 2.0]))
    with pytest.raises(TypeError, match=r"tuple \(h_0, c_0\)"):
        m(torch.randn(2, 5, 3), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"h_0 must have shape .* \(1, 2, 4\)"):
        rp.GRU(3, 4, batch_first=True)(torch.randn(2, 5, 3), torch.zeros(2, 2, 4))
    with pytest.raises(TypeError, match="floating-point"):
        m(torch.ones(2, 5, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        rp.LSTM(3, 0)
    with pytest.raises(ValueError, match="dropout"):
        rp.GRU(3, 4, dropout=1.5)
    # packing unsorted lengths follows torch: enforce_sorted=True refuses them
    with pytest.raises(RuntimeError, match="sorted in decreasing order"):
        pack_padded_sequence(torch.randn(2, 5, 3), torch.tensor([2, 5]), batch_first=True)


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


def test_adding_script_learns(tmp_path):
    metrics = train.main(["--seq-len", "6", "--steps", "150", "--hidden", "16", "--lr", "3e-2",
                          "--schedule", "none", "--out", str(tmp_path), "--no-progress"])
    assert metrics["mse_ratio"] < 0.3, metrics
    assert (tmp_path / "adding_T6.png").is_file() and (tmp_path / "lstm_gates_T6.png").is_file()


def test_hidden_gradient_norms_vanish_for_an_untrained_rnn():
    torch.manual_seed(0)
    model = rp.AddingModel("rnn", 16)
    X, y = (torch.from_numpy(a) for a in train.make_adding_problem(32, 40, seed=0))
    norms = train.hidden_gradient_norms(model, X, y)
    assert norms.shape == (40,)
    assert norms[0] < 1e-3 * norms[-1]  # the signal from step 0 has all but vanished


# ---- train_sentiment.py -----------------------------------------------------------------


def test_tokenizer_and_vocabulary_from_training_split():
    assert sentiment.tokenize("A GREAT film!<br /><br />Didn't like it...") == \
        ["a", "great", "film", "!", "didn't", "like", "it", ".", ".", "."]
    vocab = sentiment.build_vocab([["b", "a", "b"], ["c", "a", "b"]], max_size=2)
    assert vocab == {"<pad>": 0, "<unk>": 1, "b": 2, "a": 3}  # top-2 by count, then name
    ids = sentiment.encode([["a", "x", "b", "b"], []], vocab, max_len=3, keep="last")
    assert [i.tolist() for i in ids] == [[1, 2, 2], [1]]
    assert sentiment.encode([["a", "x", "b"]], vocab, 2, keep="first")[0].tolist() == [3, 1]


def test_synthetic_labels_follow_from_the_text():
    texts, labels = sentiment.make_synthetic_reviews(200, seed=4)
    for text, label in zip(texts, labels):
        words = text.split()
        score = 0
        for i, w in enumerate(words):
            sign = 1 if w in sentiment.POSITIVE else -1 if w in sentiment.NEGATIVE else 0
            score += sign * (-1 if i > 0 and words[i - 1] == "not" else 1)
        assert score != 0 and label == int(score > 0), text
    assert 0.3 < labels.mean() < 0.7


def test_classifier_ours_equals_nn_lstm():
    torch.manual_seed(0)
    ours = rp.SentimentLSTM(30, 6, 5, impl="ours").eval()
    ref = rp.SentimentLSTM(30, 6, 5, impl="torch").eval()
    ref.load_state_dict(ours.state_dict())  # the same parameter names
    tokens, lengths = sentiment.collate([np.array([3, 4, 5, 6]), np.array([7, 2]),
                                         np.array([9, 9, 9])])
    assert_close(ours(tokens, lengths), ref(tokens, lengths), tolerance(torch.float32), "logits")


def test_missing_imdb_is_a_clean_exit(tmp_path):
    with pytest.raises(SystemExit, match="IMDB"):
        sentiment.main(["--dataset", "imdb", "--data-root", str(tmp_path), "--no-progress",
                        "--out", str(tmp_path)])


# ---- train_char_lm.py ------------------------------------------------------------------


def test_char_lm_pieces():
    data = char_lm.streams(np.arange(23), 4)
    assert data.tolist()[1] == [5, 6, 7, 8, 9]  # 4 contiguous streams of 5, remainder dropped
    model = rp.CharLM(7, 4, 8, num_layers=1)
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.bias.zero_()  # uniform prediction: loss = log V exactly
    val = torch.randint(0, 7, (2, 30))
    assert math.isclose(char_lm.evaluate(model, val, bptt=8), math.log(7), rel_tol=1e-6)
    itos = list("abcdefg")
    stoi = {c: i for i, c in enumerate(itos)}
    text = rp.sample(model, itos, stoi, "ab", 10, generator=torch.Generator().manual_seed(0))
    assert text.startswith("ab") and len(text) == 12 and set(text) <= set(itos)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        rp.sample(model, itos, stoi, "xyz", 3)
    with pytest.raises(ValueError, match="temperature"):
        rp.sample(model, itos, stoi, "a", 3, temperature=0)


@pytest.mark.slow
def test_char_lm_on_tiny_shakespeare_learns(shared_data, tmp_path):
    metrics = char_lm.main(["--dataset", "shakespeare", "--data-root", str(shared_data),
                            "--steps", "200", "--out", str(tmp_path), "--no-progress"])
    assert metrics["val_loss"] < 2.6, metrics  # uniform over ~65 characters: log 65 = 4.17


# ---- classic mistakes, each checked with numbers (06_LSTM_GRU/bugs.py plants them) ----


def _paper_gru_by_hand(x, h, w_ih, w_hh, b_ih, b_hh):
    """One step of Cho et al. (2014), eq. 5-8, written out gate by gate (float64)."""
    W_ir, W_iz, W_in = w_ih.chunk(3)
    W_hr, W_hz, W_hn = w_hh.chunk(3)
    b_ir, b_iz, b_in = b_ih.chunk(3)
    b_hr, b_hz, b_hn = b_hh.chunk(3)
    r = torch.sigmoid(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)  # eq. 5
    z = torch.sigmoid(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)  # eq. 6
    n = torch.tanh(x @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)  # eq. 8: reset BEFORE W_hn
    return (1 - z) * n + z * h  # eq. 7


def test_paper_gru_follows_the_papers_equations_step_by_step():
    """Our default GRU is Cho et al.'s: two steps by hand equal it; PyTorch's form does not."""
    torch.manual_seed(0)
    paper = rp.GRU(3, 4).double()
    p = {k: v.detach() for k, v in paper.named_parameters()}
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)  # (T, N, D)
    h0 = torch.randn(1, 5, 4, generator=g, dtype=torch.float64)
    h = h0[0]
    expected = []
    for t in range(2):
        h = _paper_gru_by_hand(x[t], h, p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"],
                               p["bias_hh_l0"])
        expected.append(h)
    out, h_n = paper(x, h0)
    assert_close(out, torch.stack(expected), FLOAT64, "paper GRU, two steps by hand")
    assert_close(h_n[0], expected[-1], FLOAT64, "h_n")
    torch_form = rp.GRU(3, 4, reset_after=True).double()
    torch_form.load_state_dict(paper.state_dict())
    assert (torch_form(x, h0)[0] - out).abs().max() > 1e-3  # the other form is another map


def test_adding_model_sets_the_forget_gate_bias_to_one():
    """Gers et al. (2000): b_f = 1 in rows [H, 2H) of the [i, f, g, o] stack, nowhere else."""
    H = 6
    torch.manual_seed(0)
    model = rp.AddingModel("lstm", H)
    torch.manual_seed(0)
    plain = rp.LSTM(2, H, batch_first=True)  # the same draw, before the bias is set
    b, ref = model.rnn.bias_ih_l0.detach(), plain.bias_ih_l0.detach()
    assert torch.equal(b[H:2 * H], torch.ones(H))  # the forget gate's slice
    for gate, rows in (("i", slice(0, H)), ("g", slice(2 * H, 3 * H)), ("o", slice(3 * H, None))):
        assert torch.equal(b[rows], ref[rows]), f"the {gate} gate's bias changed"
    assert torch.equal(model.rnn.bias_hh_l0.detach(), plain.bias_hh_l0.detach())
    # so a fresh model's forget gates start open: sigmoid(1 + b_hf) at a zero input and state
    f = train.lstm_gate_trace(model.rnn, torch.zeros(1, 2))["f"][0]
    assert np.all(f > torch.sigmoid(torch.tensor(1.0 - 1 / math.sqrt(H))).item() - 1e-7)


def test_zero_length_sequence_is_a_clear_error():
    with pytest.raises(ValueError, match=r"no time steps \(T = 0"):
        rp.LSTM(3, 4, batch_first=True)(torch.randn(2, 0, 3))
    with pytest.raises(ValueError, match="at least one step"):
        rp.GRU(3, 4)(torch.randn(0, 2, 3))


def test_sentiment_evaluate_runs_in_eval_mode():
    """With dropout 0.5, evaluation is deterministic and equals the eval-mode numbers."""
    torch.manual_seed(0)
    model = rp.SentimentLSTM(30, 6, 5, dropout=0.5)
    data = [np.array([3, 4, 5, 6]), np.array([7, 2]), np.array([9, 9, 9]), np.array([8, 1, 5])]
    labels = np.array([1, 0, 1, 0])
    first = sentiment.evaluate(model, data, labels)
    assert model.training  # evaluate puts the model back into training mode
    assert sentiment.evaluate(model, data, labels) == first
    model.eval()
    with torch.no_grad():
        logits = model(*sentiment.collate(data))
    y = torch.from_numpy(labels).float()
    loss = nn.functional.binary_cross_entropy_with_logits(logits, y)
    assert_close(first[0], loss, tolerance(torch.float32), "evaluation loss")
    assert first[1] == float(((logits > 0).long() == y.long()).float().mean())


def test_char_lm_evaluate_runs_in_eval_mode():
    torch.manual_seed(0)
    model = rp.CharLM(7, 4, 8, num_layers=2, dropout=0.5)  # dropout between the layers
    val = torch.randint(0, 7, (2, 25), generator=torch.Generator().manual_seed(1))
    first = char_lm.evaluate(model, val, bptt=8)
    assert model.training and char_lm.evaluate(model, val, bptt=8) == first
    model.eval()
    with torch.no_grad():
        logits, _ = model(val[:, :-1])  # one window: the same state flow as 8-step windows
    expected = nn.functional.cross_entropy(logits.reshape(-1, 7), val[:, 1:].reshape(-1))
    assert_close(first, expected, tolerance(torch.float32), "validation loss")


def test_sentiment_script_trains_on_reshuffled_batches(tmp_path, monkeypatch, capsys):
    """The script's own loop: every epoch a new permutation of all reviews; the loss falls."""
    calls = []
    batching = sentiment.length_batches

    def recording(lengths, batch_size, *, shuffle, rng=None):
        batches = batching(lengths, batch_size, shuffle=shuffle, rng=rng)
        calls.append((len(lengths), batches))
        return batches

    monkeypatch.setattr(sentiment, "length_batches", recording)
    metrics = sentiment.main(["--n-synthetic", "300", "--epochs", "3", "--batch-size", "20",
                              "--embed", "16", "--hidden", "16", "--lr", "2e-2", "--max-len", "24",
                              "--monitor", "20", "--out", str(tmp_path), "--no-progress"])
    epochs = [np.concatenate(b) for n, b in calls if n == 300]  # the training set's batches
    assert len(epochs) == 3
    for order in epochs:
        assert sorted(order.tolist()) == list(range(300))  # each review once per epoch
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch ")]
    losses = [float(ln.split("train loss ")[1].split()[0]) for ln in lines]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    assert math.isfinite(metrics["test_loss"]) and 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["epochs"] == 3 and (tmp_path / "loss.png").is_file()


def test_char_lm_script_trains_on_carried_detached_state(tmp_path):
    """20 windows in a row from the same streams: the state is carried from window to window
    (and detached, or the second backward pass would run into the first one's freed graph)."""
    metrics = char_lm.main(["--steps", "20", "--batch-size", "4", "--bptt", "16", "--hidden", "32",
                            "--embed", "8", "--sample-len", "10", "--lr", "3e-2",
                            "--out", str(tmp_path), "--no-progress"])
    train_text = char_lm.BUILTIN_TEXT[: int(0.9 * len(char_lm.BUILTIN_TEXT))]
    uniform = math.log(len(set(train_text)))  # log V: a model that learned nothing
    assert metrics["steps"] == 20
    assert metrics["val_loss"] < uniform - 0.3 and metrics["train_loss"] < uniform, metrics
    assert_close(metrics["val_bpc"], metrics["val_loss"] / math.log(2), FLOAT64, "bits per char")
    assert (tmp_path / "sample.txt").is_file()


# ---- the scripts' options: a bad number is a usage error naming the option ------------

SCRIPTS = {"train": train, "char_lm": char_lm, "sentiment": sentiment}
BAD_OPTIONS = [
    ("train", "--batch-size", "0"), ("train", "--lr", "-1"), ("train", "--steps", "0"),
    ("train", "--hidden", "0"), ("train", "--seq-len", "1"), ("train", "--clip", "0"),
    ("train", "--eval-every", "0"), ("train", "--time-budget", "-1"),
    ("train", "--epochs", "3"),  # not used by a script that counts steps: refused
    ("char_lm", "--steps", "0"), ("char_lm", "--bptt", "0"), ("char_lm", "--layers", "0"),
    ("char_lm", "--batch-size", "0"), ("char_lm", "--temperature", "0"),
    ("char_lm", "--sample-len", "-1"), ("char_lm", "--epochs", "2"),
    ("sentiment", "--epochs", "0"), ("sentiment", "--lr", "-1"), ("sentiment", "--max-len", "0"),
    ("sentiment", "--hidden", "0"), ("sentiment", "--vocab", "0"), ("sentiment", "--monitor", "0"),
    ("sentiment", "--n-synthetic", "4"), ("sentiment", "--threads", "-1"),
]


@pytest.mark.parametrize("script, option, value", BAD_OPTIONS)
def test_bad_numbers_are_usage_errors(script, option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        SCRIPTS[script].main([option, value, "--out", str(tmp_path), "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert option in err and "Traceback" not in err, err


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_shows_every_default(script, capsys):
    with pytest.raises(SystemExit) as exit_info:
        SCRIPTS[script].main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--seed" in out and "default: None" not in out


def test_char_lm_batch_too_large_for_the_text_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="--batch-size 1000 and --bptt 64 need 65,000"):
        char_lm.main(["--batch-size", "1000", "--out", str(tmp_path), "--no-progress"])
