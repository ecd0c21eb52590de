"""Build frreg's optional compiled training kernel (everything else is in pyproject.toml).

The kernel is plain C against the Python C API (no torch headers, so the build
needs nothing but a C compiler). ``optional=True``: where it cannot be built,
frreg installs without it and the batched engine runs its pure-torch kernels.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "frreg.training.batched._native",
            ["frreg/training/batched/_native.c"],
            depends=["frreg/training/batched/_native_kernel.h"],
            # No -ffast-math: it would change float semantics for the whole process.
            # These two only let the compiler vectorise floorf, copysignf and selects.
            extra_compile_args=["-O3", "-fno-math-errno", "-fno-trapping-math", "-Wno-psabi"],
            optional=True,
        )
    ]
)
