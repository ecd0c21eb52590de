"""pytest-frreg: the fr_regressor_v2 ship gate as a pytest plugin."""
