"""Lesson 09: GPT (Radford et al. 2018, 2019)."""
