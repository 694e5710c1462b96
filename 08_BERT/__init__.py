"""Lesson 08: BERT (Devlin et al. 2018, "BERT: Pre-training of Deep Bidirectional
Transformers for Language Understanding")."""
