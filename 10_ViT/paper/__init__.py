"""Level 3 of lesson 10: the Vision Transformer of Dosovitskiy et al. (2020), in torch.nn.

Files: ``vit_paper.py`` (the model, the resolution change, attention rollout),
``convert.py`` (timm's and transformers' weights and checkpoint folders, both ways),
``train.py`` (training from scratch or fine-tuning on digits, the CIFAR-10 subset or a
folder of your own images), and their tests (``test_paper.py``, ``test_scripts.py``).
"""
