"""Reference solutions of lesson 06's exercises (NumPy only). Try the starters first."""
