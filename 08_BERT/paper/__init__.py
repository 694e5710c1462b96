"""Level 3 of lesson 08: BERT as Devlin et al. (2018) describe it, in torch.nn.

Files: ``bert_paper.py`` (the model), ``wordpiece.py`` (the tokenizer), ``convert.py``
(transformers' weights and checkpoint folders, both ways), ``train.py`` (masked-LM
pre-training), ``train_classifier.py`` (fine-tuning), and their tests.
"""
