"""Porting lesson 01's L3 models to and from scikit-learn, the production implementation the
tests check them against.

``from_sklearn(estimator)`` turns a fitted scikit-learn linear model into ours with the same
weights (a regressor into ``LinearRegression``, a ``LogisticRegression`` into our
``LogisticRegression`` or ``SoftmaxRegression``); ``to_sklearn(model)`` goes the other way.
scikit-learn stores ``coef_`` as (K, D), the layout of ``nn.Linear.weight``; our ``W`` is
its transpose, (D, K).
"""

from __future__ import annotations

import numpy as np
import torch

from utils import import_lesson

_linear = import_lesson("01_Linear_Logistic.paper.linear_paper")
_logistic = import_lesson("01_Linear_Logistic.paper.logistic_paper")
LinearRegression, LinearRegressionModel = _linear.LinearRegression, _linear.LinearRegressionModel
LogisticRegression, SoftmaxRegression = _logistic.LogisticRegression, _logistic.SoftmaxRegression
LogisticRegressionModel = _logistic.LogisticRegressionModel
SoftmaxRegressionModel = _logistic.SoftmaxRegressionModel
_Estimator = _logistic._Estimator


def from_sklearn(estimator, *, device: str | torch.device = "cpu"):
    """Our estimator with the weights of a fitted scikit-learn linear model.

    A classifier (``sklearn.linear_model.LogisticRegression``, which has ``classes_``)
    becomes our LogisticRegression (2 classes) or SoftmaxRegression (K > 2 classes); a
    regressor (LinearRegression, Ridge, Lasso, ElasticNet, SGDRegressor, ...) our
    LinearRegression. Their predictions equal scikit-learn's (float64).
    """
    if hasattr(estimator, "classes_"):
        return _classifier_from_sklearn(estimator, device=device)
    return _regressor_from_sklearn(estimator, device=device)


def to_sklearn(model):
    """A scikit-learn estimator that predicts exactly what ``model`` predicts.

    Inputs:  one of our estimators (LinearRegression, LogisticRegression,
             SoftmaxRegression) or its module
    Returns: sklearn.linear_model.LinearRegression or LogisticRegression with coef_,
             intercept_ (and classes_) set; it is not refitted
    """
    module = getattr(model, "model", model)
    if isinstance(module, LinearRegressionModel):
        return _regressor_to_sklearn(model)
    return _classifier_to_sklearn(model)  # refuses anything else, naming to_sklearn


# --------------------------------------------------------------------------------------
# Linear regression (linear_paper.py)
# --------------------------------------------------------------------------------------


def _regressor_from_sklearn(estimator, *, device: str | torch.device = "cpu") -> LinearRegression:
    """Our LinearRegression with the weights of a fitted scikit-learn linear regressor.

    Works for any estimator whose prediction is X coef_^T + intercept_
    (LinearRegression, Ridge, Lasso, ElasticNet, SGDRegressor, ...).
    sklearn's coef_ is (D,) for one target or (K, D) for K targets, the same layout as
    nn.Linear.weight; our W is its transpose. The training settings (e.g. Ridge's alpha)
    are not carried over: only what prediction needs.

    Returns: a LinearRegression (float64) whose predict equals estimator.predict.
    """
    if not hasattr(estimator, "coef_") or not hasattr(estimator, "intercept_"):
        raise ValueError(f"from_sklearn: expected a FITTED scikit-learn linear regressor with "
                         f"coef_ and intercept_, got {type(estimator).__name__} without them "
                         "(call its fit first)")
    coef = np.asarray(estimator.coef_, dtype=np.float64)
    intercept = np.atleast_1d(np.asarray(estimator.intercept_, dtype=np.float64))
    single = coef.ndim == 1
    coef = coef.reshape(1, -1) if single else coef  # (K, D)
    k, d = coef.shape
    if intercept.shape == (1,) and k > 1:
        intercept = np.repeat(intercept, k)  # fit_intercept=False stores a scalar 0.0
    ours = LinearRegression(d, None if single else k, device=device)
    ours.W = coef.T  # (D, K)
    ours.b = intercept
    return ours


def _regressor_to_sklearn(model):
    """A scikit-learn ``LinearRegression`` that predicts exactly what ``model`` predicts.

    Inputs:  our LinearRegression estimator (or a LinearRegressionModel module)
    Returns: sklearn.linear_model.LinearRegression with coef_ (D,) or (K, D) and
             intercept_ set (it is not refitted; calling its fit would overwrite them)
    """
    from sklearn.linear_model import LinearRegression as SkLinearRegression

    single = getattr(model, "single_target", False)
    module = model.model if isinstance(model, LinearRegression) else model
    weight = module.linear.weight.detach().cpu().double().numpy()  # (K, D), sklearn's layout
    bias = module.linear.bias.detach().cpu().double().numpy()  # (K,)
    estimator = SkLinearRegression()
    if single and weight.shape[0] == 1:
        estimator.coef_, estimator.intercept_ = weight[0], float(bias[0])
    else:
        estimator.coef_, estimator.intercept_ = weight, bias
    estimator.n_features_in_ = weight.shape[1]
    return estimator


# --------------------------------------------------------------------------------------
# Logistic and softmax regression (logistic_paper.py)
# --------------------------------------------------------------------------------------


def _classifier_from_sklearn(estimator, *, device: str | torch.device = "cpu"):
    """Our LogisticRegression (2 classes) or SoftmaxRegression (K > 2 classes) with the
    weights of a fitted ``sklearn.linear_model.LogisticRegression``.

    sklearn's coef_ is (1, D) for two classes (the log-odds of classes_[1]) and (K, D)
    for K > 2 (one row of logits per class, multinomial); both are nn.Linear's layout.
    Requirements: classes_ must be 0..K-1 (our labels are indices), and a K > 2 model
    must be multinomial (one-vs-rest probabilities are not a softmax).

    Returns: an estimator (float64) whose decision_function / predict_proba / predict
             equal scikit-learn's.
    """
    if not all(hasattr(estimator, a) for a in ("coef_", "intercept_", "classes_")):
        raise ValueError(f"from_sklearn: expected a FITTED sklearn LogisticRegression (with "
                         f"coef_, intercept_, classes_), got {type(estimator).__name__}")
    classes = np.asarray(estimator.classes_)
    k = classes.size
    if classes.dtype.kind not in "iu" or not np.array_equal(classes, np.arange(k)):
        raise ValueError(f"from_sklearn: our models use labels 0..K-1, but this estimator's "
                         f"classes_ are {classes.tolist()}; refit it on labels 0..K-1")
    coef = np.asarray(estimator.coef_, dtype=np.float64)  # (1, D) or (K, D)
    intercept = np.asarray(estimator.intercept_, dtype=np.float64).reshape(-1)
    if k > 2 and (getattr(estimator, "solver", None) == "liblinear"
                  or getattr(estimator, "multi_class", "auto") == "ovr"):
        raise ValueError("from_sklearn: this estimator is one-vs-rest; only a multinomial "
                         "(softmax) LogisticRegression maps onto SoftmaxRegression")
    if k == 2:
        ours = LogisticRegression(coef.shape[1], device=device)
    else:
        ours = SoftmaxRegression(coef.shape[1], k, device=device)
    ours.W = coef.T  # (K, D) -> our (D, K)
    ours.b = intercept
    return ours


def _classifier_to_sklearn(model):
    """A ``sklearn.linear_model.LogisticRegression`` predicting exactly what ``model`` does.

    Inputs:  our LogisticRegression / SoftmaxRegression, or one of the two modules
    Returns: an (unfitted-by-sklearn) LogisticRegression with coef_ (1, D) or (K, D),
             intercept_, classes_ = [0..K-1] and n_features_in_ set; its
             predict / predict_proba / decision_function then equal ours
    """
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    module = model.model if isinstance(model, _Estimator) else model
    if not isinstance(module, (LogisticRegressionModel, SoftmaxRegressionModel)):
        raise ValueError(f"to_sklearn: expected one of our fitted estimators (LinearRegression, "
                         f"LogisticRegression, SoftmaxRegression) or its module, got "
                         f"{type(model).__name__}")
    weight = module.linear.weight.detach().cpu().double().numpy()  # (K, D), sklearn's layout
    bias = module.linear.bias.detach().cpu().double().numpy()  # (K,)
    estimator = SkLogisticRegression()
    estimator.coef_, estimator.intercept_ = weight, bias
    n_classes = 2 if isinstance(module, LogisticRegressionModel) else weight.shape[0]
    estimator.classes_ = np.arange(n_classes)
    estimator.n_features_in_ = weight.shape[1]
    return estimator
