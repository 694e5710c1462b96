"""Reference solutions of lesson 04's exercises (NumPy only). Try the starters first."""
