"""Reference solutions of lesson 03's exercises (NumPy only). Try the starters first."""
