"""Lesson 07: the Transformer (Vaswani et al. 2017, "Attention Is All You Need")."""
