"""Reference solutions of lesson 11's exercises (NumPy only). Try the starters first."""
