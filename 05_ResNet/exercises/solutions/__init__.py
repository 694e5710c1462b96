"""Reference solutions of lesson 05's exercises. Try the starters first."""
