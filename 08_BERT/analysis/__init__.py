"""Level 4 of lesson 08: reading transformers' models/bert/."""
