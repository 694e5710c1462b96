"""Lesson 10: the Vision Transformer (Dosovitskiy et al. 2020, "An Image is Worth 16x16 Words")."""
