"""Level 3 of lesson 09: GPT-1 and GPT-2 as Radford et al. (2018, 2019) describe them, in torch.nn.

Files: ``gpt_paper.py`` (the model, its loss, optimizer, schedule and generation with a
key/value cache), ``convert.py`` (transformers' GPT2LMHeadModel / OpenAIGPTLMHeadModel and
checkpoint folders, both ways), ``tokenizer.py`` (character and byte-level BPE tokenizers),
``train.py`` (training on the generated language and on Tiny Shakespeare), ``generate.py``
(text from a checkpoint folder: ours, or GPT-2's), and their tests.
"""
