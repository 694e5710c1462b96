"""Level 4 of lesson 05: reading torchvision's and timm's ResNet code (README.md), with
scripts that check what the reading claims (``torchvision_analysis.py``,
``timm_analysis.py``) and their tests."""
