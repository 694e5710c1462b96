"""Starter files of lesson 05's exercises: copy one to a folder of your own and fill it in."""
