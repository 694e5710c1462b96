"""Starter files of lesson 11's exercises: copy one to a folder of your own and fill it in."""
