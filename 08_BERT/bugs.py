"""Classic bugs of lesson 08, each caught by a test: python -m utils.bugzoo 08_BERT"""

from utils.bugzoo import Bug

BUGS = [
    Bug(
        name="attention scores not divided by sqrt(d_k)",
        file="pytorch_lowlevel/bert_lowlevel.py",
        find="scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (B, h, T_q, T_k)",
        replace="scores = q @ k.transpose(-2, -1)  # (B, h, T_q, T_k)",
        caught_by="pytorch_lowlevel/test_lowlevel.py::test_forward_equals_transformers_bert_for_pretraining",
        symptom="softmax saturates as d_k grows; outputs differ from BERT's",
    ),
    Bug(
        name="padding mask applied to the queries instead of the keys",
        file="pytorch_lowlevel/bert_lowlevel.py",
        find="padding = attention_mask[:, None, None, :] == 0  # (B, 1, 1, T_k)",
        replace="padding = attention_mask[:, None, :, None] == 0  # (B, 1, 1, T_k)",
        caught_by="pytorch_lowlevel/test_lowlevel.py::test_real_positions_ignore_what_is_in_the_padding",
        symptom="real tokens read the padding; padded rows become NaN",
    ),
    Bug(
        name="special tokens chosen for masking",
        file="pytorch_lowlevel/bert_lowlevel.py",
        find="chosen = (torch.rand(shape, generator=generator, device=device) < p) & ~special_mask",
        replace="chosen = torch.rand(shape, generator=generator, device=device) < p",
        caught_by="pytorch_lowlevel/test_lowlevel.py::test_mask_tokens_statistics",
        symptom="[CLS], [SEP] and padding get masked and predicted",
    ),
    Bug(
        name="every chosen token replaced by [MASK] (no 10 % random, 10 % unchanged)",
        file="pytorch_lowlevel/bert_lowlevel.py",
        find="inputs = input_ids.masked_fill(chosen & (action < 0.8), mask_id)  # 80 %: [MASK]",
        replace="inputs = input_ids.masked_fill(chosen, mask_id)  # 80 %: [MASK]",
        caught_by="pytorch_lowlevel/test_lowlevel.py::test_mask_tokens_statistics",
        symptom="the model learns features only where it sees [MASK], absent at fine-tuning",
    ),
    Bug(
        name="weight decay on biases and LayerNorm",
        file="pytorch_lowlevel/bert_lowlevel.py",
        find='no_decay = [name for name in params if name.endswith("bias") or "norm" in name]',
        replace="no_decay = []",
        caught_by="pytorch_lowlevel/test_lowlevel.py::test_param_groups_exempt_biases_and_layer_norm_from_weight_decay",
        symptom="LayerNorm gains and biases are pulled towards 0",
    ),
    Bug(
        name="pre-LN layer where BERT is post-LN",
        file="paper/bert_paper.py",
        find="""        x = self.norm1(x + self.dropout(attended))
        x = self.norm2(x + self.dropout(self.ffn(x)))""",
        replace="""        x = x + self.dropout(attended)
        x = x + self.dropout(self.ffn(self.norm2(x)))""",
        caught_by="paper/test_paper.py::test_from_hf_equals_transformers",
        symptom="a different function: released weights give wrong outputs",
    ),
    Bug(
        name="GELU's tanh approximation instead of the erf form",
        file="paper/bert_paper.py",
        find="        return self.down(F.gelu(self.up(x)))  # (B, T, d_ff) inside",
        replace='        return self.down(F.gelu(self.up(x), approximate="tanh"))  # (B, T, d_ff) inside',
        caught_by="paper/test_paper.py::test_from_hf_equals_transformers",
        symptom="outputs off by up to 5e-4 per activation from transformers' BERT",
    ),
    Bug(
        name="masked-LM loss averaged over every position",
        file="paper/bert_paper.py",
        find="    return total / (labels != IGNORE_INDEX).sum().clamp(min=1)",
        replace="    return total / labels.numel()",
        caught_by="paper/test_paper.py::test_losses_count_masked_positions_only",
        symptom="the loss shrinks with the share of unmasked tokens; learning rates mislead",
    ),
    Bug(
        name="WordPiece continuation pieces without ##",
        file="paper/wordpiece.py",
        find="            piece = word[start:end] if start == 0 else CONTINUATION + word[start:end]",
        replace="            piece = word[start:end]",
        caught_by="paper/test_wordpiece.py::test_wordpiece_by_hand",
        symptom="'unaffable' looks up 'aff' instead of '##aff': wrong ids for the vocabulary",
    ),
    Bug(
        name="a word that cannot be segmented keeps its first pieces",
        file="paper/wordpiece.py",
        find="""        else:  # no piece starts here: the word cannot be segmented
            return [unk_token]""",
        replace="""        else:  # no piece starts here: the word cannot be segmented
            return pieces + [unk_token]""",
        caught_by="paper/test_wordpiece.py::test_wordpiece_by_hand",
        symptom="ids differ from BERT's tokenizer, which maps the whole word to [UNK]",
    ),
]
