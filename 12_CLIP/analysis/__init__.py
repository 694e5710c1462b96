"""Level 4 of lesson 12: reading transformers' and open_clip's CLIP.

Files, in reading order: README.md (the reading guide, line numbers checked),
hf_analysis.py (the reading's claims and the four modification tasks, runnable),
test_analysis.py (the same claims as tests).
"""
