"""Builds the optional C kernels and ships `schemas/` as `tfrs_twotower/schemas/`; all else is in setup.cfg.

Both extensions are `optional`: without a C compiler the install still succeeds, and
`tfrs_twotower.metrics.evaluate_retrieval` and the `Retrieval` loss fall back to TensorFlow ops.
"""

import sys

from setuptools import Extension, find_packages, setup

if sys.platform == "win32":
    compile_args, link_args, libraries = ["/O2"], [], []
else:
    # No -march: the AVX2 and AVX-512 kernels are compiled with target attributes and chosen at run time.
    compile_args, link_args, libraries = ["-O3", "-pthread"], ["-pthread"], ["m"]


def _kernel(name: str, source: str) -> Extension:
    return Extension(
        name,
        sources=[source],
        depends=["tfrs_twotower/_kernel_common.h"],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        libraries=libraries,
        optional=True,
    )


setup(
    # The example input schemas stay at the top level (README's paths) and a wheel installs them inside
    # the package, as `tfrs_twotower/schemas/*.json` (tests/test_packaging.py builds one and checks).
    packages=find_packages(include=["tfrs_twotower", "tfrs_twotower.*"]) + ["tfrs_twotower.schemas"],
    package_dir={"tfrs_twotower.schemas": "schemas"},
    package_data={"tfrs_twotower.schemas": ["*.json"]},
    ext_modules=[
        _kernel("tfrs_twotower.metrics._rank_kernel", "tfrs_twotower/metrics/_rank_kernel.c"),
        _kernel("tfrs_twotower.tasks._softmax_kernel", "tfrs_twotower/tasks/_softmax_kernel.c"),
    ],
)
