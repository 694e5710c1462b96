"""Level 3 of lesson 01: linear, logistic and softmax regression as ``torch.nn`` modules.

Each model is a small ``nn.Module`` around one ``nn.Linear``, trained with
``torch.optim.SGD`` and the curriculum's shared loop ``utils.training_utils.fit``;
a thin scikit-learn-style estimator (fit / predict / predict_proba / score) wraps
it, and ``convert.py``'s ``from_sklearn`` / ``to_sklearn`` port the weights to and from
scikit-learn, the production implementation these models are checked against.

Files (read them in this order):

- ``linear_paper.py``   least squares (Legendre 1805, Gauss 1809)
- ``logistic_paper.py`` logistic regression (Cox 1958) and softmax regression
- ``convert.py``        ``from_sklearn`` / ``to_sklearn`` for all three models
- ``train_linear.py``, ``train_logistic.py``  the scripts that train and plot them
- ``test_paper.py``     checks against scikit-learn, and L1 == L2 == L3 on the same weights
"""
