"""Reference solutions of lesson 07's exercises (NumPy only). Try the starters first."""
