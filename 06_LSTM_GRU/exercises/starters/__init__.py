"""Starter files of lesson 06's exercises: copy one to a folder of your own and fill it in."""
