"""Level 4 of lesson 09: reading transformers' models/gpt2/.

Files, in reading order:
- README.md: the reading guide (configuration_gpt2.py, modeling_gpt2.py, Conv1D, the attention
  interface and the causal mask, the cache, generate and the logits processors, tying), with
  line numbers of transformers 5.25.0.
- hf_analysis.py: the script that checks the guide's claims and does the four modifications
  (a logits processor, attention patterns, a last-token classification head, LoRA by hand).
- test_analysis.py: the same claims as tests.
"""
