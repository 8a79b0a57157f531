"""Builds the optional compiled fast path (analyzer/decode/_fastpath.pyx); the rest is in setup.cfg.

Without Cython or a C compiler the extension is skipped (``optional=True``) and the analyzer
runs its pure-Python path, with the same results (docs/architecture.md, "compiled skip").
"""

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # a build without the build requirements: pure Python
    extensions = []
else:
    extensions = cythonize(
        [Extension("analyzer.decode._fastpath", ["analyzer/decode/_fastpath.pyx"])],
        compiler_directives={"language_level": "3"},
        quiet=True,
    )
    for extension in extensions:
        extension.optional = True  # a failed compile skips it; cythonize does not keep this

setup(ext_modules=extensions)
