"""Level 4 of lesson 10: reading timm's and transformers' Vision Transformer.

Files, in reading order: README.md (the reading guide, line numbers checked),
timm_analysis.py (the reading's claims and the four modification tasks, runnable),
test_analysis.py (the same claims as tests).
"""
