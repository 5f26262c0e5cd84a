#!/usr/bin/env python3
"""Makes the probe fixture with scikit-learn: StandardScaler + LogisticRegression(C=1, lbfgs,
multinomial) on seeded random 3-class data (48 × 12), its coefficients and test probabilities.
Run: .venv/bin/python Scripts/make-fixtures-probe.py
"""
import json, os
import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rng = np.random.default_rng(3)
centers = rng.normal(size=(3, 12)).astype(np.float32)
y = np.repeat(np.arange(3), 16)
x = (centers[y] + rng.normal(scale=1.5, size=(48, 12))).astype(np.float32)
xt = (centers[np.arange(30) % 3] + rng.normal(scale=1.5, size=(30, 12))).astype(np.float32)
labels = np.array(["a", "b", "c"])[y]
sc = StandardScaler().fit(x)
lr = LogisticRegression(C=1.0, tol=1e-12, max_iter=100000).fit(sc.transform(x), labels)
out = {"sklearn": sklearn.__version__, "train": x.tolist(), "labels": labels.tolist(), "test": xt.tolist(),
       "coef": lr.coef_.tolist(), "intercept": lr.intercept_.tolist(),
       "probabilities": lr.predict_proba(sc.transform(xt)).tolist(), "scaler_mean": sc.mean_.tolist(), "scaler_scale": sc.scale_.tolist()}
with open(os.path.join(ROOT, "Tests", "EvaluationTests", "Fixtures", "logreg.json"), "w") as f:
    json.dump(out, f)
print("sklearn", sklearn.__version__)
