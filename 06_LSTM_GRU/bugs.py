"""Classic bugs of lesson 06, each caught by a test: python -m utils.bugzoo 06_LSTM_GRU"""

from utils.bugzoo import Bug

BUGS = [
    Bug(
        name="forget-gate bias set on the input gate's rows",
        file="paper/rnn_paper.py",
        find="self.rnn.bias_ih_l0[hidden_size: 2 * hidden_size].fill_(1.0)",
        replace="self.rnn.bias_ih_l0[:hidden_size].fill_(1.0)",
        caught_by=("paper/test_paper.py::test_adding_model_sets_the_forget_gate_bias_to_one",),
        symptom="the rows are stacked [i, f, g, o]: the input gate starts open and the forget "
                "gate at sigmoid(0) = 1/2, so the cell halves its memory every step",
    ),
    Bug(
        name="paper-form GRU with the reset gate applied after W_hn (L2)",
        file="pytorch_lowlevel/rnn_lowlevel.py",
        find="n = torch.tanh(gx[:, 2 * H:] + (r * h) @ W_hh[2 * H:].t() + b_hh[2 * H:])",
        replace="n = torch.tanh(gx[:, 2 * H:] + r * (h @ W_hh[2 * H:].t() + b_hh[2 * H:]))",
        caught_by=("pytorch_lowlevel/test_lowlevel.py"
                   "::test_paper_gru_follows_the_papers_equations_step_by_step",),
        symptom="reset_after=False silently computes PyTorch's form, not Cho et al.'s eq. 8: "
                "the two options give the same numbers",
    ),
    Bug(
        name="paper-form GRU with r multiplying W_hn h instead of h (L3)",
        file="paper/rnn_paper.py",
        find="hn = (r * h) @ w_hh[2 * H:].t()  # W_hn (r * h_{t-1}), eq. 8",
        replace="hn = r * (h @ w_hh[2 * H:].t())  # W_hn (r * h_{t-1}), eq. 8",
        caught_by=("paper/test_paper.py"
                   "::test_paper_gru_follows_the_papers_equations_step_by_step",),
        symptom="a third GRU, neither the paper's nor nn.GRU's; it trains, so only a check "
                "against the equations shows it",
    ),
    Bug(
        name="GRU update gate weighing the new candidate instead of the old state",
        file="pytorch_lowlevel/rnn_lowlevel.py",
        find="return (1 - z) * n + z * h  # eq. 7",
        replace="return z * n + (1 - z) * h  # eq. 7",
        caught_by=("pytorch_lowlevel/test_lowlevel.py"
                   "::test_forward_and_all_gradients_equal_torch_nn",),
        symptom="the other convention for z (Chung et al. 2014): weights copied from nn.GRU "
                "give other outputs",
    ),
    Bug(
        name="BPTT drops the dc carried back from step t+1",
        file="numpy/rnn_numpy.py",
        find="dc = dc_next + dh * o * (1.0 - tanh_c * tanh_c)",
        replace="dc = dh * o * (1.0 - tanh_c * tanh_c)",
        caught_by=("numpy/test_numpy.py::test_constant_error_carousel_carries_dc_unchanged",),
        symptom="the gradient reaches c_t only through h_t: the constant error carousel is cut "
                "and the LSTM's gradient vanishes like a plain RNN's",
    ),
    Bug(
        name="gradient clipping per tensor instead of by the global norm",
        file="pytorch_lowlevel/rnn_lowlevel.py",
        find="""    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for g in grads:
            g.detach().mul_(scale)""",
        replace="""    for g in grads:
        scale = max_norm / (g.detach().norm() + 1e-6)
        if scale < 1:
            g.detach().mul_(scale)""",
        caught_by=("pytorch_lowlevel/test_lowlevel.py::test_clip_grad_norm_equals_torch",),
        symptom="each tensor is cut to max_norm on its own: the update turns away from the "
                "gradient's direction and its total length can reach sqrt(#tensors) * max_norm",
    ),
    Bug(
        name="hidden state carried to the next window without detach",
        file="paper/train_char_lm.py",
        find="state = tuple(s.detach() for s in state)  # truncated BPTT",
        replace="state = tuple(s for s in state)  # truncated BPTT",
        caught_by=("paper/test_paper.py::test_char_lm_script_trains_on_carried_detached_state",),
        symptom="the second window's backward pass runs into the first window's freed graph: "
                "RuntimeError at step 2",
    ),
    Bug(
        name="evaluation with dropout still on",
        file="paper/train_sentiment.py",
        find="""    model.eval()
    loss_sum, correct = 0.0, 0""",
        replace="""    loss_sum, correct = 0.0, 0""",
        caught_by=("paper/test_paper.py::test_sentiment_evaluate_runs_in_eval_mode",),
        symptom="the test accuracy is that of a random thinned network: lower, and different on "
                "every call",
    ),
    Bug(
        name="training batches never reshuffled",
        file="paper/train_sentiment.py",
        find="batches = length_batches(lengths, args.batch_size, shuffle=True, rng=rng)",
        replace="batches = length_batches(lengths, args.batch_size, shuffle=False, rng=rng)",
        caught_by=("paper/test_paper.py::test_sentiment_script_trains_on_reshuffled_batches",),
        symptom="every epoch sees the same batches in the same order, longest reviews first",
    ),
    Bug(
        name="backward direction reverses the padded tensor, padding included",
        file="paper/rnn_paper.py",
        find="""    if lengths is None:
        return x.flip(0)""",
        replace="""    return x.flip(0)""",
        caught_by=("paper/test_paper.py::test_padded_with_lengths_equals_packed",),
        symptom="a short sequence's reverse pass starts in the padding: outputs and final "
                "states of ragged batches differ from nn.LSTM on the packed batch",
    ),
]
