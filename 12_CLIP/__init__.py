"""Lesson 12: CLIP (Radford et al. 2021, "Learning Transferable Visual Models From Natural
Language Supervision")."""
