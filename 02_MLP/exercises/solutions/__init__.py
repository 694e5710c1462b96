"""Reference solutions of lesson 02's exercises (NumPy only). Try the starters first."""
