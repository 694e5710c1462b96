"""Starters of lesson 09's exercises: copy one to a folder of your own and fill it in."""
