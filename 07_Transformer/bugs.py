"""Classic bugs of lesson 07, each caught by a test: python -m utils.bugzoo 07_Transformer"""

from utils.bugzoo import Bug

L2 = "pytorch_lowlevel/transformer_lowlevel.py"
L2_TESTS = "pytorch_lowlevel/test_lowlevel.py"
L2_SCRIPT = "pytorch_lowlevel/train.py"
L3 = "paper/transformer_paper.py"
L3_TESTS = "paper/test_paper.py"

BUGS = [
    Bug(
        name="causal mask hides the diagonal",
        file=L2,
        find="return torch.ones(T, T, dtype=torch.bool, device=device).triu(diagonal=1)",
        replace="return torch.ones(T, T, dtype=torch.bool, device=device).triu(diagonal=0)",
        caught_by=(f"{L2_TESTS}::test_causal_mask_equals_torch_square_subsequent_mask",),
        symptom="a position may not attend to itself; the first position attends to nothing",
    ),
    Bug(
        name="scores divided by d_k instead of sqrt(d_k)",
        file=L2,
        find="scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (B, h, T_q, T_k)",
        replace="scores = q @ k.transpose(-2, -1) / d_k  # (B, h, T_q, T_k)",
        caught_by=(f"{L2_TESTS}::test_attention_equals_F_scaled_dot_product_attention",),
        symptom="attention is too flat: the weights drift towards uniform as d_k grows",
    ),
    Bug(
        name="padding mask applied to the queries instead of the keys",
        file=L3,
        find="""        pad = torch.zeros(batch, 1, 1, t_k, dtype=dtype, device=key_padding_mask.device)
        pad = pad.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))""",
        replace="""        pad = torch.zeros(batch, 1, t_k, 1, dtype=dtype, device=key_padding_mask.device)
        pad = pad.masked_fill(key_padding_mask[:, None, :, None], float("-inf"))""",
        caught_by=(f"{L3_TESTS}::test_multi_head_attention_equals_torch",),
        symptom="real tokens attend to padding; padded queries get zero rows instead",
    ),
    Bug(
        name="softmax over the queries instead of the keys",
        file=L3,
        find="weights = torch.softmax(scores, dim=-1)  # each row sums to 1",
        replace="weights = torch.softmax(scores, dim=-2)  # each row sums to 1",
        caught_by=(f"{L3_TESTS}::test_multi_head_attention_equals_torch",),
        symptom="each key's weights sum to 1 instead of each query's: outputs are no longer "
                "weighted averages of the values",
    ),
    Bug(
        name="embeddings not multiplied by sqrt(d_model)",
        file=L3,
        find="x = embedding(tokens) * math.sqrt(self.config.d_model)  # (B, T, d)",
        replace="x = embedding(tokens)  # (B, T, d)",
        caught_by=(f"{L3_TESTS}::test_embeddings_are_shared_and_scaled",),
        symptom="the positional encoding (entries of size 1) drowns the token embeddings "
                "(size d^-1/2)",
    ),
    Bug(
        name="sin and cos swapped in the positional encoding",
        file=L3,
        find="table[:, 0::2], table[:, 1::2] = torch.sin(angle), torch.cos(angle)",
        replace="table[:, 0::2], table[:, 1::2] = torch.cos(angle), torch.sin(angle)",
        caught_by=(f"{L3_TESTS}::test_sinusoidal_table_equals_the_formula",),
        symptom="still a valid encoding, but not the paper's table: ported weights no "
                "longer match",
    ),
    Bug(
        name="dropout after the residual add instead of on the sub-layer output",
        file=L2,
        find="return self.children[norm](x + dropout(sublayer(x), self.dropout_p, "
             "training=self.training))",
        replace="return self.children[norm](dropout(x + sublayer(x), self.dropout_p, "
                "training=self.training))",
        caught_by=(f"{L2_TESTS}::test_encoder_layer_dropout_is_where_section_5_4_puts_it",),
        symptom="dropout also hits the residual stream, so no clean path runs through the "
                "stack",
    ),
    Bug(
        name="length penalty without its exponent alpha",
        file=L3,
        find="return ((5.0 + length.to(torch.float64)) / 6.0) ** alpha",
        replace="return (5.0 + length.to(torch.float64)) / 6.0",
        caught_by=(f"{L3_TESTS}::test_beam_search_length_penalty_alpha_decides_the_winner",),
        symptom="every alpha acts as 1: long outputs win even when alpha = 0 asks for raw "
                "log-probabilities",
    ),
    Bug(
        name="finished beam hypotheses keep growing",
        file=L3,
        find="            step = torch.where(done[..., None], finished_row, step)\n",
        replace="",
        caught_by=(f"{L3_TESTS}::test_beam_search_finished_hypotheses_stay_as_they_are",),
        symptom="tokens after `<eos>`, and a finished hypothesis's score changes as the "
                "search goes on",
    ),
    Bug(
        name="decoding with dropout still on",
        file=L3,
        find="    model.eval()\n    try:\n",
        replace="    try:\n",
        caught_by=(f"{L3_TESTS}::test_decoding_runs_in_eval_mode_and_restores_the_mode",),
        symptom="greedy and beam search give different tokens on each call when the model "
                "is in training mode",
    ),
    Bug(
        name="training never reshuffles: every epoch in the same order",
        file=L2_SCRIPT,
        find="""        if cursor + batch_size > n:  # a new epoch: reshuffle
            order, cursor = torch.randperm(n, generator=order_rng), 0""",
        replace="""        if cursor + batch_size > n:  # a new epoch: reshuffle
            order, cursor = order, 0""",
        caught_by=(f"{L2_TESTS}::test_training_reshuffles_every_epoch",),
        symptom="the same batches in the same order every epoch",
    ),
]
