"""Starter files of lesson 04's exercises: copy one to a folder of your own and fill it in."""
