"""Reference solutions of lesson 01's exercises (NumPy only). Try the starters first."""
