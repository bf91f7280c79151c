"""Builds the optional rank-counting extension; all other metadata lives in setup.cfg.

The extension is `optional`: without a C compiler the install still succeeds and
`tfrs_twotower.metrics.evaluate_retrieval` falls back to its TensorFlow path.
"""

import sys

from setuptools import Extension, setup

if sys.platform == "win32":
    compile_args, link_args, libraries = ["/O2"], [], []
else:
    # No -march: the AVX2 and AVX-512 kernels are compiled with target attributes and chosen at run time.
    compile_args, link_args, libraries = ["-O3", "-pthread"], ["-pthread"], ["m"]

setup(
    ext_modules=[
        Extension(
            "tfrs_twotower.metrics._rank_kernel",
            sources=["tfrs_twotower/metrics/_rank_kernel.c"],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            libraries=libraries,
            optional=True,
        )
    ]
)
