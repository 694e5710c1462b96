"""Reference solutions of lesson 09's exercises."""
